"""``xinyong mirror sync|status FILE``: keep a list mirror (:class:`xinyong.ListMirror`) from the command line.

``sync`` pulls the change feed into the mirror file up to its head (``--follow``: and keeps doing so every
``--interval`` seconds until Ctrl-C); ``status`` says how fresh it is, with exit status 1 when it is stale, for a
monitoring check. ``xinyong screen --mirror FILE`` screens a spreadsheet from it without the network.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from xinyong.errors import XinyongError
from xinyong.mirror import MirrorFreshness

from ._common import (
    EXIT_OK,
    EXIT_SOME_BAD,
    PARSER_OPTIONS,
    CliError,
    add_api_key_option,
    add_lookup_secret_option,
    add_max_age_option,
    add_url_option,
    api_key,
    emit,
    gateway_failure,
    gateway_url,
    open_mirror,
    warn,
)

__all__ = ["add_parser"]

_EPILOG = """\
examples:
  $ export XINYONG_URL=https://credit.example.gov.cn XINYONG_API_KEY=xyk_... XINYONG_LOOKUP_SECRET=xyls_...
  $ xinyong mirror sync lists.db                    # to the head of the change feed, then exit
  $ xinyong mirror sync lists.db --follow           # and keep it fresh until Ctrl-C
  $ xinyong mirror status lists.db --max-age 30m    # exit status 1 when stale
  $ xinyong screen merchants.csv --out results.csv --mirror lists.db

The API key needs the scope changes. The lookup secret (printed with the key by `xinyong-gateway keys add`)
lets the mirror find persons by the pseudonyms of the change feed: the file never holds a resident id.
Secrets come from the environment or from files (--api-key-file, --lookup-secret-file), never the command line.
"""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "mirror",
        help="keep a local copy of the lists (a list mirror) that answers without the gateway",
        description="Keep a list mirror: a local SQLite copy of the lists, following the gateway's change feed.",
        epilog=_EPILOG,
        **PARSER_OPTIONS,
    )
    actions = parser.add_subparsers(title="actions", dest="mirror_command", metavar="ACTION", required=True)
    sync = actions.add_parser(
        "sync",
        help="pull the change feed into the mirror file",
        description="Pull the change feed into the mirror file (created, mode 0600, if missing) up to its head.",
        epilog=_EPILOG,
        **PARSER_OPTIONS,
    )
    sync.add_argument("file", metavar="FILE", help="the mirror file")
    sync.add_argument("--follow", action="store_true", help="keep syncing every --interval seconds until Ctrl-C")
    sync.add_argument("--interval", type=float, default=5.0, metavar="SECONDS", help="with --follow (default 5)")
    sync.add_argument("--json", action="store_true", help="print the summary as JSON even on a terminal")
    add_url_option(sync)
    add_api_key_option(sync)
    add_lookup_secret_option(sync)
    sync.set_defaults(handler=_cmd_sync)
    status = actions.add_parser(
        "status",
        help="how fresh the mirror is (exit status 1 when stale)",
        description="Say when the mirror last synced, its cursor and how many subjects it holds.",
        epilog=_EPILOG,
        **PARSER_OPTIONS,
    )
    status.add_argument("file", metavar="FILE", help="the mirror file")
    status.add_argument("--json", action="store_true", help="print JSON even on a terminal")
    add_max_age_option(status)
    add_lookup_secret_option(status)
    status.set_defaults(handler=_cmd_status)


def _freshness_json(freshness: MirrorFreshness) -> dict[str, Any]:
    return {
        "synced_at": freshness.synced_at.isoformat() if freshness.synced_at else None,
        "age_s": round(freshness.age.total_seconds(), 3) if freshness.age is not None else None,
        "stale": freshness.stale,
        "max_age_s": freshness.max_age.total_seconds(),
        "cursor": freshness.cursor,
        "entries": freshness.entries,
    }


def _freshness_text(path: str, freshness: MirrorFreshness) -> str:
    if freshness.synced_at is None:
        return f"{path}: never completed a sync ({freshness.entries:,} subjects so far); it does not answer yet."
    state = "STALE" if freshness.stale else "fresh"
    return (
        f"{path}: {state}, last sync {freshness.synced_at:%Y-%m-%d %H:%M:%S} UTC"
        f" ({int(freshness.age.total_seconds()) if freshness.age else 0} s ago, limit {freshness.max_age}),"
        f" {freshness.entries:,} subjects, cursor {freshness.cursor}"
    )


def _cmd_sync(args: argparse.Namespace) -> int:
    if args.interval <= 0:
        raise CliError("--interval must be positive.")
    url, key = gateway_url(args), api_key(args)
    parent = Path(args.file).parent
    if not parent.is_dir():
        raise CliError(f"No directory {parent} for the mirror file.")
    with open_mirror(args.file, args, url, api_key=key) as mirror:
        try:
            if args.follow:
                warn("mirror", f"following the change feed of {url} into {args.file} every {args.interval:g} s")
                try:
                    asyncio.run(mirror.run(interval=args.interval))
                except KeyboardInterrupt:
                    pass  # Ctrl-C is how a follow ends: what was synced is committed
                applied = None
            else:
                applied = asyncio.run(mirror.sync())
        except XinyongError as exc:
            raise gateway_failure(exc, url) from exc
        freshness = mirror.freshness
    summary = {"applied": applied, **_freshness_json(freshness)}
    human = _freshness_text(args.file, freshness)
    if applied is not None:
        human = f"applied {applied:,} change-feed entries; " + human
    emit(summary, human, force_json=args.json)
    return EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    if not Path(args.file).is_file():
        raise CliError(f"No list mirror at {args.file}; create it with `xinyong mirror sync {args.file}`.")
    with open_mirror(args.file, args, None, max_age=args.max_age) as mirror:
        freshness = mirror.freshness
    emit(_freshness_json(freshness), _freshness_text(args.file, freshness), force_json=args.json)
    return EXIT_SOME_BAD if freshness.stale else EXIT_OK
