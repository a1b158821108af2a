"""``python -m online_inference.healthcheck``: exit 0 when the local service answers /health 200.

For Docker's HEALTHCHECK in images without curl or a shell; standard library only.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def main() -> int:
    url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/health"
    try:
        with urllib.request.urlopen(url, timeout=float(os.environ.get("HEALTHCHECK_TIMEOUT", "3"))) as response:
            return 0 if response.status == 200 else 1
    except OSError as error:  # URLError, HTTPError (503 while loading), timeouts
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
