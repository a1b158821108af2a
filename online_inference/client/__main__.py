"""``python -m online_inference.client``: :mod:`online_inference.client.cli`."""

import sys

from online_inference.client.cli import main

sys.exit(main())
