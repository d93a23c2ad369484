"""``xinyong-gateway audit list|verify``: read the audit log of operator actions and check its chain
(``xinyong_gateway.audit``). Both only read; neither creates a database."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from xinyong_gateway import audit
from xinyong_gateway.cli._common import CliError, Output, add_command, iso, open_resources
from xinyong_gateway.errors import GatewayError
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.store import AuditEntry, sqlite_path_from_url

__all__ = ["add_parser"]

_VERIFY_DESCRIPTION = (
    "\n\nRecomputes every entry's keyed hash in entry order (it needs the master key) and checks that the ids"
    " run\nwithout gaps, that each entry links to the hash of the one before it, and that the head record is intact"
    "\nand names the last entry. It prints the head hash: note it outside the database and pass it back with"
    "\n--anchor, which also catches entries deleted from the end together with the head record. Exit status:"
    "\n0 intact, 1 broken (naming the first bad entry), 2 the log could not be read."
)


def add_parser(commands: Any) -> None:
    group = add_command(
        commands, "audit", "read and verify the audit log of operator actions", "xinyong-gateway audit verify"
    )
    actions = group.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    listing = add_command(
        actions,
        "list",
        "the latest entries, oldest first: who did what, to what, when",
        "xinyong-gateway audit list --limit 20 --action subjects.reveal",
    )
    listing.add_argument("--limit", type=int, default=50, metavar="N", help="how many entries (default 50)")
    listing.add_argument("--action", metavar="ACTION", help="only entries of this action, e.g. subjects.reveal")
    listing.set_defaults(handler=_list)
    verify = add_command(
        actions,
        "verify",
        "check the chain: exit 0 if intact, 1 naming the bad entry",
        "xinyong-gateway audit verify",
    )
    verify.description = (verify.description or "") + _VERIFY_DESCRIPTION
    verify.add_argument(
        "--anchor", metavar="HASH", help="a head hash noted earlier: the log is broken unless that entry is in it"
    )
    verify.set_defaults(handler=_verify)


def _require_database(settings: GatewaySettings) -> None:
    """A read-only command does not create the SQLite database (nor its key file) it was pointed at."""
    url = settings.database_url
    if url.startswith("sqlite:") and not sqlite_path_from_url(url).exists():
        raise CliError(f"No database at {url}; run `xinyong-gateway migrate` first.")


def _entry_json(entry: AuditEntry) -> dict[str, Any]:
    try:
        details: Any = json.loads(entry.details)
    except ValueError:  # shown as stored; `audit verify` reports it
        details = entry.details
    return {
        "entry_id": entry.entry_id,
        "at": iso(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "details": details,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def _human_table(entries: list[AuditEntry]) -> str:
    """One line per entry, columns aligned: id, time, actor, action, target, then the details' JSON (if any)."""
    actor = max(len(entry.actor) for entry in entries)
    action = max(len(entry.action) for entry in entries)
    target = max(len(entry.target) for entry in entries)
    return "\n".join(
        f"{entry.entry_id:>6}  {iso(entry.at)}  {entry.actor:<{actor}}  {entry.action:<{action}}"
        f"  {entry.target:<{target}}  {'' if entry.details == '{}' else entry.details}".rstrip()
        for entry in entries
    )


def _list(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    if args.limit < 1:
        raise CliError("--limit must be at least 1.")
    _require_database(settings)

    async def read() -> list[AuditEntry]:
        async with open_resources(settings) as opened:
            return await opened.store.latest_audit_entries(args.limit, action=args.action)

    entries = asyncio.run(read())
    human = _human_table(entries) if entries else "No audit entries yet."
    out.emit([_entry_json(entry) for entry in entries], human)
    return 0


def _verify(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    _require_database(settings)

    async def run() -> audit.AuditVerification:
        async with open_resources(settings) as opened:
            return await audit.verify(opened.store, opened.master, anchor=args.anchor)

    try:
        result = asyncio.run(run())
    except GatewayError as exc:  # exit status 2: not verified either way
        raise CliError(f"The audit log could not be verified: {exc}") from exc
    document = {
        "intact": result.intact,
        "entries": result.entries,
        "head": result.head,
        "head_entry": result.head_entry,
        "broken_at": result.broken_at,
        "problem": result.problem,
    }
    out.emit(document, result.summary())
    if not result.intact and out.json:  # the sentence a person reads, beside the JSON a script reads
        sys.stderr.write(f"xinyong-gateway: {result.summary()}\n")
    return 0 if result.intact else 1
