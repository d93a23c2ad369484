"""``xinyong-gateway backup DEST | restore SRC | verify``: a consistent online copy of a SQLite database (PostgreSQL:
``pg_dump``, README "Backup and restore"), its restore onto an empty place, and the checks that need no trust in a
database (``credit/verification.py``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import stat
from pathlib import Path
from typing import Any

from xinyong_gateway.cli._common import CliError, Output, Progress, add_command, open_resources, plural, policy_option
from xinyong_gateway.crypto import key_file_for
from xinyong_gateway.errors import MasterKeyError
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.store import POSTGRES_BACKUP_ADVICE, restore_sqlite, sqlite_path_from_url

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    backup = add_command(
        commands,
        "backup",
        "copy the live SQLite database (PostgreSQL: pg_dump)",
        "xinyong-gateway backup /srv/backups/xinyong-2026-03-01.db",
        description="Copy the SQLite database to DEST (a new file) at one instant, while `serve` goes on accepting"
        " events: every event acknowledged before the command started is in the copy. The copy is sealed under the"
        " master key like the database: keep the key apart from the copy (--with-key-file only into a directory"
        f" other users cannot read). PostgreSQL: {POSTGRES_BACKUP_ADVICE}.",
    )
    backup.add_argument("destination", metavar="DEST", type=Path, help="the new file to write")
    backup.add_argument(
        "--with-key-file",
        action="store_true",
        help="also copy the master key file beside DEST (DEST.key; refused into a world-readable directory)",
    )
    backup.set_defaults(handler=_backup)
    restore = add_command(
        commands,
        "restore",
        "restore a backup onto an empty place (then: verify)",
        "xinyong-gateway restore /srv/backups/xinyong-2026-03-01.db --db sqlite:///var/xinyong.db",
        description="Restore the SQLite backup SRC as the database (--db), which must not exist yet; SRC.key, if"
        " there is one, becomes its key file (unless XINYONG_MASTER_KEY is set). Then run `xinyong-gateway"
        f" verify`. PostgreSQL: {POSTGRES_BACKUP_ADVICE}.",
    )
    restore.add_argument("source", metavar="SRC", type=Path, help="a file written by `xinyong-gateway backup`")
    restore.set_defaults(handler=_restore)
    verify = add_command(
        commands,
        "verify",
        "check bodies, the audit chain and a full replay of the inbox",
        "xinyong-gateway verify",
        description="Check what can be checked without trusting the database: every inbox body opens and hashes to"
        " its stored digest, the audit chain holds, and a full replay of the inbox equals every stored credit"
        " file. Exit status: 0 all hold, 1 something is broken, 2 not verified (say, the projector is behind).",
    )
    policy_option(verify, "the configured credit policy (the adopted one wins, as for the projector)")
    verify.set_defaults(handler=_verify)


def _sqlite_path(settings: GatewaySettings, command: str) -> Path:
    if not settings.database_url.startswith("sqlite:"):
        raise CliError(f"`{command}` copies SQLite databases only: {POSTGRES_BACKUP_ADVICE}.")
    return sqlite_path_from_url(settings.database_url)


def _private_directory(directory: Path) -> None:
    """Refuse a directory other users may read or write (a key file there is as good as published)."""
    mode = directory.stat().st_mode
    if mode & (stat.S_IROTH | stat.S_IWOTH | stat.S_IXOTH):
        raise CliError(
            f"{directory} can be read by other users (mode {stat.filemode(mode)}): a master key file does not go"
            " there; choose a directory of mode 0700, or leave out --with-key-file and keep the key apart."
        )


def _copy_key_file(source: Path, destination: Path) -> None:
    fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(source.read_bytes())
        handle.flush()
        os.fsync(handle.fileno())


def _backup(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    path = _sqlite_path(settings, "backup")
    destination: Path = args.destination
    if destination.exists():
        raise CliError(f"{destination} exists: a backup goes to a new file.")
    if not destination.parent.is_dir():
        raise CliError(f"{destination.parent} is not a directory.")
    key_file = key_file_for(path)
    if args.with_key_file:
        if settings.master_key is not None or not key_file.exists():
            raise CliError("--with-key-file: this database's master key comes from XINYONG_MASTER_KEY, not a key file.")
        _private_directory(destination.parent.resolve())
    display = Progress("backup", settings.progress_interval)

    async def run() -> int:
        async with open_resources(settings) as opened:
            events = await opened.store.inbox_count()
            display.show(f"copying {path} ({plural(events, 'event')} so far)")
            await opened.store.lifecycle().backup(destination)
            if args.with_key_file:
                _copy_key_file(key_file, key_file_for(destination))
            await opened.audit(
                "database.backup", opened.store.display_url, {"to": str(destination), "key_file": args.with_key_file}
            )
            return events

    try:
        events = asyncio.run(run())
    finally:
        display.close()
    document = {
        "backup": str(destination),
        "bytes": destination.stat().st_size,
        "events_at_start": events,
        "key_file": str(key_file_for(destination)) if args.with_key_file else None,
    }
    key_note = f" and its key file {document['key_file']}" if args.with_key_file else " (keep the master key apart)"
    out.emit(document, f"Backed up to {destination}{key_note}: at least {plural(events, 'event')}.")
    return 0


def _restore(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    path = _sqlite_path(settings, "restore")
    source: Path = args.source
    if not source.is_file():
        raise CliError(f"No backup at {source}.")
    source_key, key_file = key_file_for(source), key_file_for(path)
    if settings.master_key is None and not source_key.exists() and not key_file.exists():
        raise CliError(f"No master key: set XINYONG_MASTER_KEY, or put the backup's key file at {source_key}.")
    if path.exists():
        raise CliError(f"{path} exists: restore onto an empty place (move that database away first).")
    restore_sqlite(source, path)
    copied_key = settings.master_key is None and source_key.exists() and not key_file.exists()
    if copied_key:
        _copy_key_file(source_key, key_file)

    async def run() -> None:
        async with open_resources(settings) as opened:  # the restored database opens with the key
            await opened.audit("database.restore", opened.store.display_url, {"from": str(source)})

    try:
        asyncio.run(run())
    except MasterKeyError:  # the wrong key: leave no database behind that will not open with it
        shutil.move(path, path.with_name(path.name + ".wrong-key"))
        if copied_key:
            key_file.unlink()
        raise
    out.emit(
        {"restored": str(path), "from": str(source), "key_file": str(key_file) if copied_key else None},
        f"Restored {source} as {path}; now run `xinyong-gateway verify`.",
    )
    return 0


def _verify(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    from xinyong_gateway.credit.policy import policy_from
    from xinyong_gateway.credit.verification import Verification, verify_database

    url = settings.database_url
    if url.startswith("sqlite:") and not sqlite_path_from_url(url).exists():
        raise CliError(f"No database at {url}; run `xinyong-gateway migrate` first.")
    policy = policy_from(settings.policy_file)
    display = Progress("verify", settings.progress_interval)

    async def run() -> Verification:
        async with open_resources(settings) as opened:
            return await verify_database(opened.store, opened.master, policy, progress=display.show)

    try:
        result = asyncio.run(run())
    finally:
        display.close()
    document = {
        "intact": result.intact,
        "bodies": result.bodies,
        "erased": result.erased,
        "broken_bodies": result.bad_body_count,
        "broken_body_positions": result.bad_bodies,
        "audit_intact": result.audit.intact if result.audit else None,
        "audit_entries": result.audit.entries if result.audit else None,
        "files": result.files,
        "files_compared": result.files_compared,
        "differing_files": result.differing_count,
        "differing_keys": result.differing,
    }
    out.emit(document, "\n".join(result.lines()))
    if not result.files_compared and not result.bad_body_count and result.audit and result.audit.intact:
        return 2
    return 0 if result.intact else 1
