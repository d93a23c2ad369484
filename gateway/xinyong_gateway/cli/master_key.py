"""``xinyong-gateway master-key``: print a new random master key for ``XINYONG_MASTER_KEY``; ``master-key rotate``:
re-seal the database under a new master key (``xinyong_gateway.rotation``), resumable, online on PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

from xinyong_gateway.cli._common import CliError, Output, Progress, add_command, open_resources, plural, positive
from xinyong_gateway.crypto import MasterKey, key_file_for, next_key_file_for, write_key_file
from xinyong_gateway.errors import GatewayError
from xinyong_gateway.rotation import RotationResult, rotate
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.store import sqlite_path_from_url

__all__ = ["add_parser"]

_ROTATE_DESCRIPTION = """\
Re-seal every sealed value of the database (bodies, identities, secrets, the index keys) under a new
master key. With XINYONG_MASTER_KEY set: set it to the new key and XINYONG_MASTER_KEY_PREVIOUS to the
current one, in this command's environment and every gateway process's (restart them first: they then
open data under either key). With the SQLite key file: the new key is made beside it as <db>.key.next
and renamed over the key file at the end (stop `serve` first). Interrupted or killed, run it again: it
resumes. Exit status 0 when every value opens with the new key (drop the previous key then), 1 if not."""


def add_parser(commands: Any) -> None:
    parser = add_command(
        commands,
        "master-key",
        "print a new random master key; `rotate` re-seals the database",
        "xinyong-gateway master-key      # then: export XINYONG_MASTER_KEY=<the printed key>",
        description="Print a new random master key for XINYONG_MASTER_KEY (`master-key rotate`: re-seal the"
        " database under a new one).",
    )
    parser.set_defaults(handler=_master_key)
    actions = parser.add_subparsers(dest="master_key_command", metavar="ACTION")
    rotation = add_command(
        actions,
        "rotate",
        "re-seal every sealed value under a new master key (resumable)",
        "XINYONG_MASTER_KEY=<new> XINYONG_MASTER_KEY_PREVIOUS=<old> xinyong-gateway master-key rotate",
        description=_ROTATE_DESCRIPTION,
    )
    rotation.add_argument(
        "--page", type=positive, default=500, metavar="N", help="values re-sealed per transaction (default 500)"
    )
    rotation.set_defaults(handler=_rotate)


def _master_key(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    key = MasterKey.generate_text()
    out.emit({"master_key": key}, f"{key}\n  export XINYONG_MASTER_KEY=... and keep a copy safe.")
    return 0


def _rotate(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    url = settings.database_url
    sqlite_path = sqlite_path_from_url(url) if url.startswith("sqlite:") else None
    if sqlite_path is not None and not sqlite_path.exists():
        raise CliError(f"No database at {url}; run `xinyong-gateway migrate` first.")
    key_file = next_file = None
    if settings.master_key is not None:
        if settings.master_key_previous is None:
            raise CliError(
                "Set XINYONG_MASTER_KEY to the new key and XINYONG_MASTER_KEY_PREVIOUS to the current one"
                " (`xinyong-gateway master-key` prints a new key)."
            )
        new = MasterKey.from_text(settings.master_key.get_secret_value())
        old = MasterKey.from_text(settings.master_key_previous.get_secret_value())
    elif sqlite_path is not None and key_file_for(sqlite_path).exists():
        key_file, next_file = key_file_for(sqlite_path), next_key_file_for(sqlite_path)
        if not next_file.exists():
            write_key_file(next_file, MasterKey.generate_text())
        new = MasterKey.from_text(next_file.read_text(encoding="ascii"))
        old = MasterKey.from_text(key_file.read_text(encoding="ascii"))
    else:
        raise CliError("XINYONG_MASTER_KEY must be set (the new key), with XINYONG_MASTER_KEY_PREVIOUS (the current).")
    if new.check_value == old.check_value:
        raise CliError("The new and the previous master key are the same key.")
    display = Progress("master-key rotate", settings.progress_interval)

    async def run() -> RotationResult:
        async with open_resources(settings) as opened:
            result = await rotate(
                opened.store,
                new,
                old,
                page=int(args.page),
                progress=lambda column, seen: display.show(f"{column}: {plural(seen, 'value')} checked"),
            )
            await opened.audit(
                "master_key.rotate",
                opened.store.display_url,
                {"resealed": result.resealed, "unreadable": result.unreadable, "finished": result.finished},
            )
            return result

    try:
        result = asyncio.run(run())
    finally:
        display.close()
    if result.finished and key_file is not None and next_file is not None:
        os.replace(next_file, key_file)  # the rotation is over: the new key becomes the key file
        _sync_directory(key_file)
    document = {
        "finished": result.finished,
        "resealed": result.resealed,
        "already_under_new_key": result.already,
        "unreadable": result.unreadable,
    }
    resealed = sum(result.resealed.values())
    if not result.finished:
        out.emit(document, f"Re-sealed {plural(resealed, 'value')}; NOT finished.")
        where = ", ".join(f"{name}: {count}" for name, count in result.unreadable.items())
        raise GatewayError(
            f"Some sealed values open with neither key ({where}): the rotation cannot finish; keep both keys."
        )
    drop = "the key file now holds the new key" if key_file else "XINYONG_MASTER_KEY_PREVIOUS may be dropped now"
    out.emit(document, f"Re-sealed {plural(resealed, 'value')} under the new master key; {drop}.")
    return 0


def _sync_directory(path: Path) -> None:
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
