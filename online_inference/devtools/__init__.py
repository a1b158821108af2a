"""What maintainers run beside the service, left out of the wheel: the generated sections of the
documents (``python -m online_inference.devtools.docs``), their charts, and what ``/proc`` says of
a process."""
