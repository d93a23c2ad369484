"""What only the embedded SQLite store has: its URLs, its file, and group commit as its write-ahead log shows it.
The storage interface itself, on both backends, is in ``test_store.py``."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.gateway.test_store import entry, make_source
from xinyong_gateway.errors import ConfigError, StoreUnavailableError
from xinyong_gateway.store import AppendStatus, SqliteStore, Store, open_store, sqlite_path_from_url


def url_for(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[Store]:
    async with open_store(url_for(db_path), create=True) as opened:
        await opened.migrate()
        yield opened


def wal_commits(db_path: Path) -> tuple[bytes, int]:
    """(salt, number of commit frames) of the database's write-ahead log, read as the documented file format.

    A frame whose "database size after commit" field is non-zero ends a transaction; frames whose salt differs
    from the header's are left over from before the log was last restarted and do not count."""
    data = db_path.with_name(db_path.name + "-wal").read_bytes()
    page_size = struct.unpack(">I", data[8:12])[0]
    salt = data[16:24]
    commits = 0
    offset = 32
    while offset + 24 + page_size <= len(data):
        db_size_after_commit = struct.unpack(">I", data[offset + 4 : offset + 8])[0]
        if data[offset + 8 : offset + 16] != salt:
            break
        commits += db_size_after_commit != 0
        offset += 24 + page_size
    return salt, commits


# -- URLs and opening ----------------------------------------------------------------------------------------


def test_sqlite_url_maps_to_relative_and_absolute_paths() -> None:
    assert sqlite_path_from_url("sqlite:///var/x.db") == Path("var/x.db")
    assert sqlite_path_from_url("sqlite:////srv/x.db") == Path("/srv/x.db")


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite:///x.db?mode=ro", "sqlite:///", "mysql://db/x"])
def test_unusable_database_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        open_store(url)


async def test_opening_a_database_where_no_file_can_be_created_raises_store_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the database folder should be")
    with pytest.raises(StoreUnavailableError):
        await SqliteStore(url_for(blocker / "x.db"), create=True).open()


# -- the file ------------------------------------------------------------------------------------------------


async def test_two_hundred_concurrent_appends_share_fewer_commits(store: Store, db_path: Path) -> None:
    """Group commit: one transaction (one fsync) acknowledges many appends."""
    source = await make_source(store)
    salt_before, commits_before = wal_commits(db_path)
    results = await asyncio.gather(*(store.append(entry(source, f"msg_{n}")) for n in range(200)))
    salt_after, commits_after = wal_commits(db_path)
    assert all(result.status is AppendStatus.ACCEPTED for result in results)
    assert salt_after == salt_before, "the log was restarted in between; the commit count would be incomplete"
    assert 1 <= commits_after - commits_before < 200
