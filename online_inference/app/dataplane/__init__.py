"""The data plane: the model's life cycle, the card's rules on rows, shared model calls, the memory budget and queue deadline, and the metrics. Imports no web framework."""
