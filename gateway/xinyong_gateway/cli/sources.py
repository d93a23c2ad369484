"""``xinyong-gateway sources add|list|disable|rotate``: register and manage webhook senders (``access.sources``). Each
change is recorded in the audit log (the key's fingerprint, never a secret)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from xinyong.errors import InvalidKeyError
from xinyong.events import SOURCE_KINDS
from xinyong.subjects import validate_uscc
from xinyong.webhooks import VerifyingKey
from xinyong_gateway.access import OPERATOR_SOURCE_ID, add_source, rotate_source
from xinyong_gateway.cli._common import CliError, Output, add_command, duration, iso, open_resources, positive
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.store import SourceRecord, to_micros

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    sources = add_command(commands, "sources", "register and manage webhook senders", "xinyong-gateway sources list")
    actions = sources.add_subparsers(dest="sources_command", metavar="ACTION", required=True)
    add = add_command(
        actions,
        "add",
        "register a source; prints its id (and its secret, shown once)",
        'xinyong-gateway sources add --kind courier --name "Swift Express" --public-key whpk_...',
        description="Register a source; prints its id and, for a symmetric source, its secret (shown once).",
    )
    add.add_argument("--kind", required=True, choices=SOURCE_KINDS)
    add.add_argument("--name", required=True)
    add.add_argument("--uscc", help="the sender's unified social credit code (required for an intermediary)")
    add.add_argument(
        "--public-key",
        type=_public_key,
        metavar="whpk_…",
        help="register an Ed25519 public key (v1a) instead of a secret",
    )
    add.add_argument("--rate", type=positive, metavar="N", help="own rate limit, verified requests per second")
    add.set_defaults(handler=_add)
    listing = add_command(
        actions, "list", "list sources with their keys and key expiry", "xinyong-gateway sources list"
    )
    listing.add_argument(
        "--all", action="store_true", help="also the gateway's own operator source (objection and repair commands)"
    )
    listing.set_defaults(handler=_list)
    disable = add_command(
        actions, "disable", "refuse a source's webhooks from now on", "xinyong-gateway sources disable src_..."
    )
    disable.add_argument("source_id", metavar="ID")
    disable.set_defaults(handler=_disable)
    rotate = add_command(
        actions,
        "rotate",
        "a new secret or public key; old keys stay valid for --grace",
        "xinyong-gateway sources rotate src_... --grace 24h",
        description="Issue a new secret (or register a new public key); old keys stay valid for --grace.",
    )
    rotate.add_argument("source_id", metavar="ID")
    rotate.add_argument("--grace", type=duration, default=timedelta(hours=24), help="grace period (default 24h)")
    rotate.add_argument(
        "--public-key", type=_public_key, metavar="whpk_…", help="new Ed25519 public key instead of a new secret"
    )
    rotate.set_defaults(handler=_rotate)


def _public_key(text: str) -> VerifyingKey:
    try:
        return VerifyingKey.parse(text)
    except InvalidKeyError as exc:
        raise argparse.ArgumentTypeError(f"not a public key ({exc}; `xinyong keygen` makes a key pair)") from None


def _source_json(record: SourceRecord) -> dict[str, Any]:
    return {
        "source_id": record.source_id,
        "kind": record.kind,
        "name": record.name,
        "uscc": record.uscc,
        "status": record.status,
        "rate_limit": record.rate_limit,
        "created_at": iso(record.created_at),
        "disabled_at": iso(record.disabled_at),
        "keys": [
            {
                "scheme": key.scheme,
                "fingerprint": key.fingerprint,
                "created_at": iso(key.created_at),
                "expires_at": iso(key.expires_at),
            }
            for key in record.keys
        ],
    }


def _human_source(record: SourceRecord) -> str:
    lines = [f"{record.source_id}  {record.kind:<11}  {record.status:<8}  {record.name}"]
    if record.uscc:
        lines.append(f"    uscc {record.uscc}")
    if record.rate_limit:
        lines.append(f"    rate limit {record.rate_limit:g}/s")
    for key in record.keys:
        expiry = f"expires {iso(key.expires_at)}" if key.expires_at else "current"
        lines.append(f"    key {key.scheme:<3} {key.fingerprint}  {expiry}")
    return "\n".join(lines)


def _audit_details(record: SourceRecord) -> dict[str, Any]:
    """What the audit log keeps of a source added or rotated: the source and its newest key's fingerprint."""
    key = record.keys[-1]
    return {
        "kind": record.kind,
        "name": record.name,
        "uscc": record.uscc,
        "rate_limit": record.rate_limit,
        "key_scheme": key.scheme,
        "key_fingerprint": key.fingerprint,
    }


def _add(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    now = datetime.now(UTC)
    name = args.name.strip()
    if not name:
        raise CliError("--name must not be empty.")
    uscc = validate_uscc(args.uscc) if args.uscc else None
    if args.kind == "intermediary" and uscc is None:
        raise CliError("An intermediary source posts about itself only: give its code with --uscc.")
    public_key: VerifyingKey | None = args.public_key

    async def add() -> dict[str, Any]:
        async with open_resources(settings) as opened:
            record, secret = await add_source(
                opened.store,
                opened.master,
                kind=args.kind,
                name=name,
                uscc=uscc,
                public_key=public_key,
                rate_limit=args.rate,
                now=now,
            )
            await opened.audit("sources.add", record.source_id, _audit_details(record))
        result = _source_json(record)
        if secret is not None:
            result["secret"] = str(secret)
        if public_key is not None:
            result["public_key"] = str(public_key)
        return result

    result = asyncio.run(add())
    human = f"Registered source {result['source_id']} ({result['kind']}, {result['name']})."
    if "secret" in result:
        human += f"\n  secret: {result['secret']}\n  Give it to the sender now; it is not shown again."
    else:
        human += "\n  Webhooks must be signed (v1a) with the matching whsk_ signing key."
    out.emit(result, human)
    return 0


def _list(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    async def list_all() -> list[SourceRecord]:
        async with open_resources(settings) as opened:
            return await opened.store.list_sources()

    records = [r for r in asyncio.run(list_all()) if args.all or r.source_id != OPERATOR_SOURCE_ID]
    human = "\n".join(_human_source(r) for r in records) if records else "No sources yet."
    out.emit([_source_json(r) for r in records], human)
    return 0


def _disable(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    async def disable() -> SourceRecord:
        async with open_resources(settings) as opened:
            record = await opened.store.disable_source(args.source_id, now=to_micros(datetime.now(UTC)))
            await opened.audit("sources.disable", record.source_id)
            return record

    record = asyncio.run(disable())
    out.emit(_source_json(record), f"Disabled source {record.source_id}; its webhooks are refused from now on.")
    return 0


def _rotate(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    now = datetime.now(UTC)
    public_key: VerifyingKey | None = args.public_key

    async def rotate() -> dict[str, Any]:
        async with open_resources(settings) as opened:
            record, secret = await rotate_source(
                opened.store, opened.master, args.source_id, public_key=public_key, grace=args.grace, now=now
            )
            expire_at = iso(to_micros(now + args.grace))
            details = {**_audit_details(record), "previous_keys_expire_at": expire_at}
            await opened.audit("sources.rotate", record.source_id, details)
        result = _source_json(record)
        result["previous_keys_expire_at"] = expire_at
        if secret is not None:
            result["secret"] = str(secret)
        return result

    result = asyncio.run(rotate())
    human = f"Rotated source {result['source_id']}; previous keys stay valid until {result['previous_keys_expire_at']}."
    if "secret" in result:
        human += f"\n  new secret: {result['secret']}\n  Give it to the sender now; it is not shown again."
    out.emit(result, human)
    return 0
