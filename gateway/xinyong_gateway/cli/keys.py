"""``xinyong-gateway keys add|list|revoke``: API keys of the query side (screening, change feed;
``access.api_keys``). Issuing and revoking are recorded in the audit log (the key's id, never its secrets)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from typing import Any

from xinyong_gateway.access import IssuedApiKey, add_api_key
from xinyong_gateway.cli._common import (
    CliError,
    Output,
    add_command,
    iso,
    open_resources,
    positive,
    scopes,
    source_ids,
)
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.store import API_SCOPES, ApiKeyRecord, to_micros

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    keys = add_command(
        commands,
        "keys",
        "issue, list and revoke API keys of the query side",
        "xinyong-gateway keys list",
        description="Issue, list and revoke API keys of the query side (screening, the change feed).",
    )
    actions = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    add = add_command(
        actions,
        "add",
        "issue an API key; prints it and its lookup secret (shown once)",
        'xinyong-gateway keys add --name "云购商城 onboarding" --scopes screen,changes',
        description="Issue an API key; prints it and its lookup secret for the change feed's RIC pseudonyms (both"
        " shown once).",
    )
    add.add_argument("--name", required=True, help="who the key is for (shown in `keys list`)")
    add.add_argument(
        "--scopes",
        required=True,
        type=scopes,
        metavar="SCOPES",
        help=f"comma-separated: {', '.join(API_SCOPES)} (screening, the change feed, objections and repairs,"
        " attestations, subscriptions)",
    )
    add.add_argument(
        "--sources",
        type=source_ids,
        default=(),
        metavar="SOURCE_IDS",
        help="comma-separated ids of the sources the key speaks for: with the cases scope it reads the objections"
        " and repair applications they filed, and nobody else's",
    )
    add.add_argument("--rate", type=positive, metavar="N", help="own rate limit, requests per second")
    add.set_defaults(handler=_add)
    listing = add_command(actions, "list", "list API keys (never their secrets)", "xinyong-gateway keys list")
    listing.set_defaults(handler=_list)
    revoke = add_command(
        actions,
        "revoke",
        "revoke an API key (running gateways refuse it within 2 s)",
        "xinyong-gateway keys revoke key_...",
        description="Revoke an API key: running gateways refuse it within their refresh interval (2 s by default).",
    )
    revoke.add_argument("key_id", metavar="KEY_ID")
    revoke.set_defaults(handler=_revoke)


def _key_json(record: ApiKeyRecord) -> dict[str, Any]:
    return {
        "key_id": record.key_id,
        "name": record.name,
        "scopes": list(record.scopes),
        "sources": list(record.sources),
        "rate_limit": record.rate_limit,
        "status": record.status,
        "created_at": iso(record.created_at),
        "revoked_at": iso(record.revoked_at),
    }


def _human_key(record: ApiKeyRecord) -> str:
    rate = f"  rate limit {record.rate_limit:g}/s" if record.rate_limit else ""
    revoked = f"  revoked {iso(record.revoked_at)}" if record.revoked_at else ""
    sources = f"  for {','.join(record.sources)}" if record.sources else ""
    line = f"{record.key_id}  {record.status:<7}  {','.join(record.scopes):<20}  {record.name}"
    return f"{line}{sources}{rate}{revoked}"


def _add(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    now = datetime.now(UTC)
    name = args.name.strip()
    if not name:
        raise CliError("--name must not be empty.")
    if "cases" in args.scopes and not args.sources:
        raise CliError("The cases scope reads the filings of the key's own sources: name them with --sources.")

    async def add() -> IssuedApiKey:
        async with open_resources(settings) as opened:
            for source_id in args.sources:
                if await opened.store.get_source(source_id) is None:
                    raise CliError(f"No source with id {source_id!r} (see `xinyong-gateway sources list`).")
            issued = await add_api_key(
                opened.store,
                opened.master,
                name=name,
                scopes=args.scopes,
                rate_limit=args.rate,
                now=now,
                sources=args.sources,
            )
            record = issued.record
            details = {
                "name": record.name,
                "scopes": list(record.scopes),
                "sources": list(record.sources),
                "rate_limit": record.rate_limit,
            }
            await opened.audit("keys.add", record.key_id, details)
            return issued

    issued = asyncio.run(add())
    result = {**_key_json(issued.record), "api_key": issued.api_key, "lookup_secret": issued.lookup_secret}
    out.emit(
        result,
        f"Issued API key {result['key_id']} ({result['name']}; scopes {', '.join(result['scopes'])}"
        + (f"; for {', '.join(result['sources'])}" if result["sources"] else "")
        + ").\n"
        f"  api key:       {result['api_key']}\n"
        f"  lookup secret: {result['lookup_secret']}   (the change feed's RIC pseudonyms: xinyong.ric_pseudonym)\n"
        "  Give both to the marketplace now; neither is shown again.",
    )
    return 0


def _list(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    async def list_all() -> list[ApiKeyRecord]:
        async with open_resources(settings) as opened:
            return await opened.store.list_api_keys()

    records = asyncio.run(list_all())
    human = "\n".join(_human_key(r) for r in records) if records else "No API keys yet."
    out.emit([_key_json(r) for r in records], human)
    return 0


def _revoke(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    async def revoke() -> ApiKeyRecord:
        async with open_resources(settings) as opened:
            record = await opened.store.revoke_api_key(args.key_id, now=to_micros(datetime.now(UTC)))
            await opened.audit("keys.revoke", record.key_id)
            return record

    record = asyncio.run(revoke())
    out.emit(
        _key_json(record),
        f"Revoked API key {record.key_id}; running gateways refuse it within their refresh interval (2 s by default).",
    )
    return 0
