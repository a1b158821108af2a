"""The service: transports, protocols, the data plane and the model, one folder per layer (docs/ARCHITECTURE.md). Imports neither scikit-learn nor pandas."""
