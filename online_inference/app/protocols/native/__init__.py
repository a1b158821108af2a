"""The native REST API: `/predict` (its hot path, decoder, full body model and answer), `/explain` (its answer with the contributions), `/health`, `/model`, `/metrics`."""
