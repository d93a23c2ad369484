"""``xinyong-gateway signing-keys rotate|list``: the gateway's attestation signing keys (``access.signing_keys``).

``migrate`` makes the first key; ``rotate`` makes a new current key and retires the old one, which stays published at
``/.well-known/jwks.json`` so that what it signed keeps verifying. Both are recorded in the audit log (the kid, never
key material), as is every ``list``."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from typing import Any

from xinyong_gateway.access import rotate_signing_key
from xinyong_gateway.cli._common import Output, add_command, iso, open_resources
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.store import SigningKeyRecord

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    keys = add_command(
        commands,
        "signing-keys",
        "rotate and list the attestation signing keys",
        "xinyong-gateway signing-keys list",
        description="Rotate and list the gateway's attestation signing keys (Ed25519; the private\n"
        "halves sealed under the master key). `migrate` makes the first one.",
    )
    actions = keys.add_subparsers(dest="signing_keys_command", metavar="ACTION", required=True)
    rotate = add_command(
        actions,
        "rotate",
        "make a new signing key (the old one retires, still published)",
        "xinyong-gateway signing-keys rotate",
        description="Make a new current signing key. The old one is retired: it signs nothing\n"
        "more; it stays in /.well-known/jwks.json so that what it signed still verifies.\n"
        "Running gateways sign with the new key within their refresh interval (2 s).",
    )
    rotate.set_defaults(handler=_rotate)
    listing = add_command(
        actions,
        "list",
        "list the signing keys (kid, status; never a private part)",
        "xinyong-gateway signing-keys list",
    )
    listing.set_defaults(handler=_list)


def _key_json(record: SigningKeyRecord) -> dict[str, Any]:
    return {
        "kid": record.kid,
        "algorithm": record.algorithm,
        "status": record.status,
        "created_at": iso(record.created_at),
        "retired_at": iso(record.retired_at),
    }


def _human_key(record: SigningKeyRecord) -> str:
    retired = f"  retired {iso(record.retired_at)}" if record.retired_at else ""
    return f"{record.kid}  {record.status:<7}  {record.algorithm}  created {iso(record.created_at)}{retired}"


def _rotate(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    async def rotate() -> tuple[SigningKeyRecord, list[SigningKeyRecord]]:
        async with open_resources(settings) as opened:
            record = await rotate_signing_key(opened.store, opened.master, now=datetime.now(UTC))
            await opened.audit("signing_keys.rotate", record.kid, {"algorithm": record.algorithm})
            return record, await opened.store.list_signing_keys()

    record, records = asyncio.run(rotate())
    retired = [r.kid for r in records if r.retired_at == record.created_at and r.kid != record.kid]
    result = {**_key_json(record), "retired": retired}
    then = f"; retired {', '.join(retired)} (still published for verification)" if retired else ""
    out.emit(
        result,
        f"New signing key {record.kid}{then}.\n"
        "  Running gateways sign with it within their refresh interval (2 s by default).",
    )
    return 0


def _list(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    async def list_all() -> list[SigningKeyRecord]:
        async with open_resources(settings) as opened:
            records = await opened.store.list_signing_keys()
            await opened.audit("signing_keys.list", "signing_keys", {"keys": len(records)})
            return records

    records = asyncio.run(list_all())
    human = "\n".join(_human_key(r) for r in records) if records else "No signing keys yet (`migrate` makes the first)."
    out.emit([_key_json(r) for r in records], human)
    return 0
