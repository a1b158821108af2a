"""The FastAPI service. Imports neither scikit-learn nor pandas."""
