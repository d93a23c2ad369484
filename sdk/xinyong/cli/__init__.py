"""The SDK's command line, ``xinyong``.

One subcommand per task; each is a ``_cmd_<name>(args) -> int`` registered in :func:`_build_parser`:

``xinyong keygen``
    a new Ed25519 key pair for signing events (scheme ``v1a``): the ``whsk_`` signing key stays with
    the sender, the ``whpk_`` public key is registered at the gateway.

Output meant for programs is one JSON object; on a terminal it is short prose. Errors are one sentence
on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence

from xinyong import __version__
from xinyong.errors import XinyongError
from xinyong.webhooks import SigningKey

__all__ = ["main"]

_EXIT_OK = 0
_EXIT_FAILURE = 1
_EXIT_USAGE = 2
_EXIT_INTERRUPTED = 130

_KEYGEN_EPILOG = """\
example:
  $ xinyong keygen --json > courier-key.json
  $ xinyong-gateway sources add --kind courier --name "SF Express" \\
        --public-key "$(jq -r .public_key courier-key.json)"

The signing key (whsk_...) signs every event the sender posts; keep it secret.
The public key (whpk_...) is what the gateway checks signatures with.
"""


def _cmd_keygen(args: argparse.Namespace) -> int:
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
    return _EXIT_OK


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xinyong",
        description="Command line of the xinyong (信用) credit-information SDK.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)

    keygen = commands.add_parser(
        "keygen",
        help="create an Ed25519 key pair for signing events",
        description=(
            "Create a new Ed25519 key pair for signing events (Standard Webhooks scheme v1a).\n"
            "Prints JSON when stdout is not a terminal, or with --json."
        ),
        epilog=_KEYGEN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    keygen.add_argument(
        "--json",
        action="store_true",
        help='print one JSON object {"signing_key": "whsk_...", "public_key": "whpk_..."}',
    )
    keygen.set_defaults(handler=_cmd_keygen)
    return parser


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return _EXIT_OK
    if isinstance(exc.code, int):
        return exc.code
    return _EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``xinyong`` with ``argv`` (default: the process's arguments); returns the exit code."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse already reported
        return _exit_code(exc)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return _EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`xinyong keygen | head -c0`): nothing left to tell it. Point stdout
        # at /dev/null so the interpreter's final flush does not fail a second time.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _EXIT_FAILURE
    except (XinyongError, OSError) as exc:
        sys.stderr.write(f"xinyong {args.command}: {exc}\n")
        return _EXIT_FAILURE
