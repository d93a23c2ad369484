"""``xinyong-gateway``: run and administer the gateway.

    xinyong-gateway [--db URL] [--json] [--actor NAME] COMMAND …     (also after the command)
    xinyong-gateway migrate
    xinyong-gateway serve [--host H] [--port P] [--workers N] [--no-projector] [--no-dispatcher]
                          [--metrics-port P [--metrics-host H]]
    xinyong-gateway status
    xinyong-gateway sources add --kind marketplace|courier|regulator --name NAME
                                [--uscc CODE] [--public-key whpk_…] [--rate N]
    xinyong-gateway sources list | disable ID | rotate ID [--grace 24h] [--public-key whpk_…]
    xinyong-gateway project [--once]
    xinyong-gateway dispatch
    xinyong-gateway import FILE.ndjson --source ID [--rejects FILE] [--jobs N]
    xinyong-gateway subjects show uscc|ric ID [--reveal]
    xinyong-gateway policy check [FILE] | diff FILE [--examples N] | apply FILE
    xinyong-gateway objections file uscc|ric ID --record REC --grounds TEXT | list [--open] [--overdue]
                               [--subject T:ID] | show ID | decide ID --outcome upheld|rejected --note TEXT
    xinyong-gateway repairs apply uscc|ric ID --record REC --grounds TEXT | list | show ID
                            | decide ID --outcome granted|refused --note TEXT
    xinyong-gateway keys add --name NAME --scopes screen,changes,cases,attest,subscribe [--sources IDS] [--rate N]
                      | list | revoke KEY_ID
    xinyong-gateway signing-keys rotate | list
    xinyong-gateway subscriptions list | show ID | disable ID | enable ID
    xinyong-gateway audit list [--limit N] [--action A] | verify [--anchor HASH]
    xinyong-gateway backup DEST [--with-key-file] | restore SRC | verify
    xinyong-gateway retention run [--dry-run]
    xinyong-gateway master-key | master-key rotate [--page N]
    xinyong-gateway --version

Every operator action (a reveal, a policy adopted, a source, API key or signing key changed, an import) is recorded in
the audit log as ``--actor`` / ``XINYONG_ACTOR`` / the OS user (``audit``).

One module per command group, each with its ``add_parser``; every command's parser names its handler
(``set_defaults(handler=…)``, a :data:`~xinyong_gateway.cli._common.Handler`), which opens what it needs with
``open_resources(settings)``: only ``migrate`` creates a database (and its key file). Output is human-readable on a
terminal and JSON otherwise (``--json`` forces JSON); long commands show progress on stderr
(``_common.Progress``). Errors are one sentence on stderr and a non-zero exit status (2: usage or settings; 1: the
command failed), never a traceback; Ctrl-C is one sentence of what was done and exit status 130. A command group
without its action, or no command at all, prints the help that lists them (exit status 2).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from xinyong.errors import XinyongError
from xinyong_gateway import __version__
from xinyong_gateway.cli import (
    audit,
    backup,
    dispatch,
    due_process,
    import_,
    keys,
    master_key,
    migrate,
    policy,
    project,
    retention,
    serve,
    signing_keys,
    sources,
    status,
    subjects,
    subscriptions,
)
from xinyong_gateway.cli._common import (
    EXIT_INTERRUPTED,
    CliError,
    Handler,
    Interrupted,
    Output,
    os_error_sentence,
    top_help_formatter,
)
from xinyong_gateway.errors import ConfigError, GatewayError
from xinyong_gateway.settings import DEFAULT_DATABASE_URL, GatewaySettings

__all__ = ["build_parser", "main"]

EPILOG = """\
examples:
  xinyong-gateway migrate
  xinyong-gateway sources add --kind marketplace --name "Example Mall" --uscc 91330100MA2H9X4W2M
  xinyong-gateway sources add --kind courier --name "Swift Express" --public-key whpk_...
  xinyong-gateway serve --port 8080

The database defaults to $XINYONG_DATABASE_URL, then sqlite:///./var/xinyong.db; only `migrate` creates it. The
master key comes from $XINYONG_MASTER_KEY; on SQLite it may instead be the key file <database>.key, which `migrate`
creates with a new database. --db and --json may also follow the command. Each command has --help.
"""

_COMMANDS = (
    migrate,
    serve,
    status,
    project,
    dispatch,
    import_,
    subjects,
    due_process,
    policy,
    sources,
    keys,
    signing_keys,
    subscriptions,
    audit,
    backup,
    retention,
    master_key,
)
"""The command modules, in the order ``--help`` lists them."""


_SETTING_OPTIONS = {
    "database_url": "--db",
    "host": "serve --host",
    "port": "serve --port",
    "log_format": "serve --log-format",
    "metrics_port": "serve --metrics-port",
    "metrics_host": "serve --metrics-host",
    "policy_file": "--policy",
    "actor": "--actor",
}
"""The command-line option of each setting that has one (for messages about an invalid value)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xinyong-gateway",
        description="The xinyong credit-information gateway: signed webhook ingest and its administration.",
        epilog=EPILOG,
        formatter_class=top_help_formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_global_options(parser, default=None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in _COMMANDS:
        command.add_parser(commands)
    parser.set_defaults(handler=None, usage_of=parser)
    _complete(commands)
    return parser


def _add_global_options(parser: argparse.ArgumentParser, *, default: Any) -> None:
    parser.add_argument(
        "--db",
        metavar="URL",
        default=default,
        help=f"database URL (default: $XINYONG_DATABASE_URL or {DEFAULT_DATABASE_URL})",
    )
    parser.add_argument("--json", action="store_true", default=default, help="print JSON even on a terminal")
    parser.add_argument(
        "--actor",
        metavar="NAME",
        default=default,
        help="who runs the command, as the audit log records it (default: $XINYONG_ACTOR, else the OS user)",
    )


def _complete(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Every command and group accepts the global options too (``sources list --db URL --json``; given there, they
    win), and a group named without its action prints its help, which lists them."""
    for parser in dict.fromkeys(commands.choices.values()):
        _add_global_options(parser, default=argparse.SUPPRESS)  # absent unless given: the top level's value stays
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                action.required = False
                parser.set_defaults(usage_of=parser)
                _complete(action)


def _settings(args: argparse.Namespace) -> GatewaySettings:
    """The settings from the environment, with what the command line overrides."""
    overrides: dict[str, Any] = {}
    if args.db:
        overrides["database_url"] = args.db
    if args.actor is not None:
        overrides["actor"] = args.actor
    command_overrides = getattr(args, "settings_overrides", None)
    if command_overrides is not None:
        overrides.update(command_overrides(args))
    if getattr(args, "policy", None):
        overrides["policy_file"] = args.policy
    try:
        return GatewaySettings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "settings"
            option = _SETTING_OPTIONS.get(name)
            where = f"XINYONG_{name.upper()}" + (f" or {option}" if option else "")
            problems.append(f"{name} ({where}): {error['msg'][0].lower()}{error['msg'][1:]}")
        raise CliError(f"Invalid setting {'; '.join(problems)}.") from None


def _error(message: str) -> None:
    sys.stderr.write(f"xinyong-gateway: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``xinyong-gateway`` with ``argv`` (default: the process's arguments); returns the exit status."""
    args = build_parser().parse_args(argv)
    handler: Handler | None = args.handler
    if handler is None:  # no command, or a group without its action: what there is to choose from
        args.usage_of.print_help(sys.stderr)
        return 2
    out = Output(args.json)
    try:
        return handler(_settings(args), args, out)
    except Interrupted as exc:
        sys.stderr.write(f"xinyong-gateway: {exc}\n")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        sys.stderr.write("xinyong-gateway: Interrupted.\n")
        return EXIT_INTERRUPTED
    except (CliError, ConfigError) as exc:
        _error(str(exc))
        return 2
    except BrokenPipeError:
        # The reader went away (`xinyong-gateway sources list | head -1`): nothing left to tell it. Point stdout at
        # /dev/null so that the interpreter's last flush does not fail again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        _error(os_error_sentence(exc))
        return 1
    except (GatewayError, XinyongError, ValueError) as exc:
        _error(str(exc))
        return 1
