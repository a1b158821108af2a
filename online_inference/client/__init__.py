"""The request script (``python -m online_inference.client``, :mod:`.cli`): a CSV sent to the
service, its predictions written. Needs only httpx and the package's own ``card.py``: no numpy,
no pandas, nothing of the service."""
