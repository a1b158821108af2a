"""The native REST API: `/predict` (its hot path, decoder, full body model and answer), `/health`, `/model`, `/metrics`."""
