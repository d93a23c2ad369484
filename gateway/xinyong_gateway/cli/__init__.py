"""``xinyong-gateway``: run and administer the gateway.

    xinyong-gateway [--db URL] migrate
    xinyong-gateway [--db URL] serve [--host H] [--port P] [--workers N] [--no-projector]
    xinyong-gateway [--db URL] sources add --kind marketplace|courier|regulator --name NAME
                                           [--uscc CODE] [--public-key whpk_…] [--rate N]
    xinyong-gateway [--db URL] sources list | disable ID | rotate ID [--grace 24h] [--public-key whpk_…]
    xinyong-gateway [--db URL] project [--once]
    xinyong-gateway [--db URL] import FILE.ndjson --source ID [--rejects FILE] [--jobs N]
    xinyong-gateway [--db URL] subjects show uscc|ric ID [--reveal]
    xinyong-gateway [--db URL] objections file uscc|ric ID --record REC --grounds TEXT | list [--open] [--overdue]
                                          [--subject T:ID] | show ID | decide ID --outcome upheld|rejected --note TEXT
    xinyong-gateway [--db URL] repairs apply uscc|ric ID --record REC --grounds TEXT | list | show ID
                                       | decide ID --outcome granted|refused --note TEXT
    xinyong-gateway [--db URL] policy check [FILE] | diff FILE [--examples N] | apply FILE
    xinyong-gateway [--db URL] keys add --name NAME --scopes screen,changes [--rate N] | list | revoke KEY_ID
    xinyong-gateway [--db URL] audit list [--limit N] [--action A] | verify [--anchor HASH]
    xinyong-gateway master-key

Every operator action (a reveal, a policy adopted, a source or API key changed, an import) is recorded in the audit
log as ``--actor`` / ``XINYONG_ACTOR`` / the OS user (``audit``).

One module per command group, each with its ``add_parser``; every command's parser names its handler
(``set_defaults(handler=…)``, a :data:`~xinyong_gateway.cli._common.Handler`), which opens what it needs with
``open_resources(settings)``. Output is human-readable on a terminal and JSON otherwise (``--json`` forces JSON).
Errors are one sentence on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from xinyong.errors import XinyongError
from xinyong_gateway.cli import (
    audit,
    due_process,
    import_,
    keys,
    master_key,
    migrate,
    policy,
    project,
    serve,
    sources,
    subjects,
)
from xinyong_gateway.cli._common import CliError, Handler, Output
from xinyong_gateway.errors import GatewayError
from xinyong_gateway.settings import DEFAULT_DATABASE_URL, GatewaySettings

__all__ = ["build_parser", "main"]

EPILOG = """\
examples:
  xinyong-gateway migrate
  xinyong-gateway sources add --kind marketplace --name "Example Mall" --uscc 91330100MA2H9X4W2M
  xinyong-gateway sources add --kind courier --name "Swift Express" --public-key whpk_...
  xinyong-gateway serve --port 8080

The database defaults to $XINYONG_DATABASE_URL, then sqlite:///./var/xinyong.db. The master key comes from
$XINYONG_MASTER_KEY; on SQLite it may instead be the key file <database>.key, created on first use.
"""

_COMMANDS = (migrate, serve, project, import_, subjects, due_process, policy, sources, keys, audit, master_key)
"""The command modules, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xinyong-gateway",
        description="The xinyong credit-information gateway: signed webhook ingest and its administration.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--db", metavar="URL", help=f"database URL (default: $XINYONG_DATABASE_URL or {DEFAULT_DATABASE_URL})"
    )
    parser.add_argument("--json", action="store_true", help="print JSON even on a terminal")
    parser.add_argument(
        "--actor",
        metavar="NAME",
        help="who runs the command, as the audit log records it (default: $XINYONG_ACTOR, else the OS user)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in _COMMANDS:
        command.add_parser(commands)
    return parser


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
        fields = ", ".join(".".join(str(p) for p in err["loc"]) for err in exc.errors())
        raise CliError(f"Invalid setting(s): {fields}.") from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``xinyong-gateway`` with ``argv`` (default: the process's arguments); returns the exit status."""
    args = build_parser().parse_args(argv)
    out = Output(args.json)
    handler: Handler = args.handler
    try:
        return handler(_settings(args), args, out)
    except CliError as exc:
        sys.stderr.write(f"xinyong-gateway: error: {exc}\n")
        return 2
    except (GatewayError, XinyongError, ValueError, OSError) as exc:
        sys.stderr.write(f"xinyong-gateway: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130
