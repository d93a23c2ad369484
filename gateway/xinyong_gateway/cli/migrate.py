"""``xinyong-gateway migrate``: create or upgrade the database schema (idempotent), the gateway's own operator
source (under which the objection and repair commands write their events), and its first attestation signing key
when it has none (recorded in the audit log as ``signing_keys.create``; ``signing-keys rotate`` makes the next). The
one command that creates a database: on SQLite the file, its directory and its master key file (unless
``XINYONG_MASTER_KEY`` is set)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from typing import Any

from xinyong_gateway.access import ensure_operator_source, ensure_signing_key
from xinyong_gateway.cli._common import Output, add_command, open_resources, plural
from xinyong_gateway.settings import GatewaySettings

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    parser = add_command(
        commands, "migrate", "create or upgrade the database schema (idempotent)", "xinyong-gateway migrate"
    )
    parser.set_defaults(handler=_migrate)


def _migrate(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    async def run() -> tuple[list[str], int, str, str | None]:
        async with open_resources(settings, migrate=True) as opened:
            await ensure_operator_source(opened.store, opened.master, now=datetime.now(UTC))
            first_key = await ensure_signing_key(opened.store, opened.master, now=datetime.now(UTC))
            if first_key is not None:
                await opened.audit("signing_keys.create", first_key.kid, {"algorithm": first_key.algorithm})
            status = await opened.store.schema_status()
            return opened.applied, status.current, opened.store.display_url, first_key.kid if first_key else None

    applied, version, database, signing_key = asyncio.run(run())
    human = (
        f"Applied {plural(len(applied), 'migration')}: {', '.join(applied)}; schema is at version {version}."
        if applied
        else f"Schema is up to date (version {version})."
    )
    if signing_key:
        human += f"\nMade the first attestation signing key {signing_key}."
    out.emit({"applied": applied, "schema_version": version, "database": database, "signing_key": signing_key}, human)
    return 0
