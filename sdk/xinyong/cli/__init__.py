"""The SDK's command line, ``xinyong``.

One module per subcommand, each with an ``add_parser(commands)`` that registers it and its handler
``(args) -> exit status``; what they share (exit codes, secrets from files or the environment, the progress line,
summaries) is in ``_common``:

``xinyong keygen``
    a new Ed25519 key pair for signing events (scheme ``v1a``).
``xinyong screen FILE --out FILE``
    screen a CSV of merchants (``id_type,id,name``) and write it back with list, grade, score, measures, reasons.
``xinyong send FILE --source ID --secret-file FILE | --key-file FILE``
    a sender's bulk upload of NDJSON events: signed, retried, deduplicated by webhook id, rejects to a file.
``xinyong mirror sync|status FILE``
    keep a list mirror (``xinyong.ListMirror``) that answers without the gateway.
``xinyong attest verify FILE --jwks URL|FILE``
    check a signed attestation of a subject's status offline (``xinyong.verify_attestation``).

Output meant for programs is one JSON object; on a terminal it is short prose; progress goes to stderr on a
terminal only. Secrets never come from the command line. Errors are one sentence on stderr and a non-zero exit
status (2 when a run could not go on), never a traceback. The SDK's own log lines (``logging``, see
``xinyong._logs``) go to stderr for the time of a command: warnings, and with ``--verbose`` (before or after the
command) the retries too; stdout holds results only.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence

from xinyong import __version__
from xinyong.errors import XinyongError

from . import attest, keygen, mirror, screen, send
from ._common import EXIT_CANNOT_RUN, EXIT_INTERRUPTED, EXIT_OK, PARSER_OPTIONS, CliError

__all__ = ["main"]

_EXIT_FAILURE = 1
_EPILOG = """\
examples:
  $ xinyong screen merchants.csv --out results.csv                              (XINYONG_URL, XINYONG_API_KEY)
  $ xinyong send deliveries.ndjson --source src_... --key-file courier-key.json
  $ xinyong mirror sync lists.db --follow                                       (XINYONG_LOOKUP_SECRET too)
  $ xinyong attest verify check.jws --jwks https://credit.example.gov.cn/.well-known/jwks.json

Each command has --help with more, e.g. `xinyong screen --help`.
"""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xinyong",
        description="Command line of the xinyong (信用) credit-information SDK.",
        epilog=_EPILOG,
        **PARSER_OPTIONS,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="also log the SDK's retries on stderr")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)
    for command in (keygen, screen, send, mirror, attest):
        command.add_parser(commands)
    _add_to_every_command(commands)
    return parser


def _add_to_every_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``--verbose`` is accepted after the command too (``xinyong send FILE … -v``), at any depth."""
    for parser in dict.fromkeys(commands.choices.values()):  # an alias maps to its parser again
        nested = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
        if nested:
            for action in nested:
                _add_to_every_command(action)
        else:
            parser.add_argument(
                "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="also log the SDK's retries"
            )


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return EXIT_OK
    if isinstance(exc.code, int):
        return exc.code
    return EXIT_CANNOT_RUN


class _LogLines(logging.Formatter):
    def __init__(self, command: str) -> None:
        super().__init__()
        self._prefix = f"xinyong {command}: "

    def format(self, record: logging.LogRecord) -> str:
        return f"{self._prefix}{record.levelname.lower()}: {record.getMessage()}"


@contextlib.contextmanager
def _sdk_log_to_stderr(command: str, *, verbose: bool) -> Iterator[None]:
    """The SDK's log lines on stderr while a command runs (warnings; with ``verbose`` the retries, at info, too),
    never on stdout, which holds results. The logger is left as it was found afterwards."""
    logger = logging.getLogger("xinyong")
    level = logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LogLines(command))
    handler.setLevel(level)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``xinyong`` with ``argv`` (default: the process's arguments); returns the exit code."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse already reported
        return _exit_code(exc)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        with _sdk_log_to_stderr(args.command, verbose=args.verbose):
            return handler(args)
    except KeyboardInterrupt:  # a command that has more to say about it says so with a CliError (send, screen)
        sys.stderr.write(f"xinyong {args.command}: interrupted.\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`xinyong keygen | head -c0`): nothing left to tell it. Point stdout
        # at /dev/null so the interpreter's final flush does not fail a second time.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _EXIT_FAILURE
    except CliError as exc:
        sys.stderr.write(f"xinyong {args.command}: {exc}\n")
        return exc.code
    except (XinyongError, OSError) as exc:
        sys.stderr.write(f"xinyong {args.command}: {exc}\n")
        return _EXIT_FAILURE
