"""``python -m online_inference.app``: run the service, configured from the environment (see :mod:`server`)."""

from online_inference.app.server import main

if __name__ == "__main__":
    main()
