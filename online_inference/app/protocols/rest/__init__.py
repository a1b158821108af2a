"""What the REST protocols share on FastAPI: the error handler and response models, media types, dependencies, the docs UI, request metrics."""
