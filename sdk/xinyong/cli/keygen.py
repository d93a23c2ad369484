"""``xinyong keygen``: a new Ed25519 key pair for signing events (scheme ``v1a``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from xinyong.webhooks import SigningKey

from ._common import EXIT_OK, PARSER_OPTIONS

__all__ = ["add_parser"]

_EPILOG = """\
example:
  $ xinyong keygen --json > courier-key.json
  $ xinyong-gateway sources add --kind courier --name "SF Express" \\
        --public-key "$(jq -r .public_key courier-key.json)"

The signing key (whsk_...) signs every event the sender posts; keep it secret.
The public key (whpk_...) is what the gateway checks signatures with.
"""


def add_parser(commands: Any) -> None:
    keygen = commands.add_parser(
        "keygen",
        help="create an Ed25519 key pair for signing events",
        description=(
            "Create a new Ed25519 key pair for signing events (Standard Webhooks scheme v1a).\n"
            "Prints JSON when stdout is not a terminal, or with --json."
        ),
        epilog=_EPILOG,
        **PARSER_OPTIONS,
    )
    keygen.add_argument(
        "--json",
        action="store_true",
        help='print one JSON object {"signing_key": "whsk_...", "public_key": "whpk_..."}',
    )
    keygen.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    key = SigningKey.generate()
    signing_key, public_key = str(key), str(key.public_key)
    if args.json or not sys.stdout.isatty():
        sys.stdout.write(json.dumps({"signing_key": signing_key, "public_key": public_key}) + "\n")
    else:
        sys.stdout.write(
            "Signing key (keep it secret; give it only to the sender, which signs events with it):\n"
            f"  {signing_key}\n"
            "\n"
            "Public key (register it at the gateway):\n"
            f"  {public_key}\n"
            "\n"
            "For example:\n"
            f"  xinyong-gateway sources add --kind courier --name NAME --public-key {public_key}\n"
        )
    sys.stdout.flush()
    return EXIT_OK
