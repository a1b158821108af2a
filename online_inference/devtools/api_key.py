"""``python -m online_inference.devtools.api_key --name N --groups g1,g2`` (``make api-key NAME=...
GROUPS=...``): a new random API key, printed once, and the line of ``API_KEYS_FILE`` that lets it
call those groups' endpoints (the key's name, its SHA-256 digest and its groups: the file never
holds the key). The name and the groups are checked by the service's own rules
(:func:`online_inference.app.dataplane.access.key_line`, which parses the line as the service
would), so a line printed here is one the service starts with.
"""

from __future__ import annotations

import argparse
import secrets
import sys

from online_inference.app.dataplane.access import GROUPS, key_line

KEY_BYTES = 32  # 256 random bits, 43 characters of base64url
EPILOG = ("The key is shown only once: give it to its holder, who sends 'Authorization: Bearer <key>' (gRPC: the "
          "'authorization' metadata). Add the line to the API_KEYS_FILE: the service reads it within "
          "SECRETS_RECHECK_SECONDS, and removing the line revokes the key.")


def new_key() -> str:
    """A random key of KEY_BYTES in base64url that a command line takes as a value: one that began
    with '-' (one in 64) would be read as an option (``--api-key -x...``: "expected one argument"),
    so it is drawn again."""
    while (key := secrets.token_urlsafe(KEY_BYTES)).startswith("-"):
        continue  # drawn again: see above
    return key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].strip("`"), epilog=EPILOG)
    parser.add_argument("--name", required=True, help="who holds the key (the access log names it): 1 to 64 of A-Z a-z 0-9 . _ -")
    parser.add_argument("--groups", required=True, help=f"the endpoint groups it may call, comma-separated: {', '.join(GROUPS)}")
    args = parser.parse_args(argv)
    key = new_key()
    try:
        line = key_line(args.name, key, ",".join(group.strip() for group in args.groups.split(",")))
    except ValueError as error:
        parser.error(str(error))
    print(f"key:  {key}")  # the two lines alone, on one stream: the README pipes them (| tee | sed)
    print(f"line: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
