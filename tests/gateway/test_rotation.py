"""Master-key rotation (``master-key rotate``, ``xinyong_gateway.rotation``): every sealed column of the registry is
re-sealed under the new key; a run killed midway (SIGKILL) is finished by running it again; online, with the gateway
serving under both keys; the index keys (blind index, API-key digests, audit chain) keep working throughout."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.factories import event, person
from tests.gateway.conftest import GATEWAY_SCRIPT, TEST_MASTER_KEY, gateway_env
from xinyong.webhooks import SigningSecret, signature_headers
from xinyong_gateway.cli import main as cli_main
from xinyong_gateway.crypto import MasterKey, key_file_for, next_key_file_for
from xinyong_gateway.errors import MasterKeyError
from xinyong_gateway.keyring import unlock_with
from xinyong_gateway.sealed_columns import SEALED_COLUMNS
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.store import open_store
from xinyong_gateway.web.app import create_app

NEW_KEY = base64.b64encode(bytes(range(100, 132))).decode()


async def sealed_under(url: str, key: MasterKey) -> tuple[int, int]:
    """How many sealed values of the database open with ``key`` alone, and how many do not."""
    opened = refused = 0
    async with open_store(url) as store:
        lifecycle = store.lifecycle()
        for column in SEALED_COLUMNS:
            after = None
            while rows := await lifecycle.read_sealed(column, after, 1000):
                for row in rows:
                    try:
                        column.open(key, row.bound, row.sealed)
                        opened += 1
                    except MasterKeyError:
                        refused += 1
                after = rows[-1].key
    return opened, refused


def run(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GATEWAY_SCRIPT), *args], cwd=folder, capture_output=True, text=True, env=gateway_env(**env), timeout=120
    )


def test_a_rotation_killed_midway_is_finished_by_running_it_again(tmp_path: Path) -> None:
    assert run(tmp_path, "migrate").returncode == 0
    source_id = json.loads(run(tmp_path, "--json", "sources", "add", "--kind", "marketplace", "--name", "商城").stdout)[
        "source_id"
    ]
    assert run(tmp_path, "keys", "add", "--name", "k", "--scopes", "screen").returncode == 0
    rng = random.Random(5)
    people = [person(rng) for _ in range(50)]
    events = tmp_path / "events.ndjson"
    events.write_text(
        "".join(json.dumps(event("complaint.filed", rng, merchant=rng.choice(people))) + "\n" for _ in range(3000)),
        encoding="utf-8",
    )
    assert run(tmp_path, "import", str(events), "--source", source_id).returncode == 0
    assert run(tmp_path, "project", "--once").returncode == 0
    db = tmp_path / "var" / "xinyong.db"
    url = f"sqlite:///{db}"
    old = MasterKey.from_text(key_file_for(db).read_text())

    with subprocess.Popen(
        [str(GATEWAY_SCRIPT), "master-key", "rotate", "--page", "20"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=gateway_env(XINYONG_PROGRESS_INTERVAL="0"),
    ) as process:
        assert process.stderr is not None
        for line in process.stderr:  # progress after each page: kill it once the inbox is well under way
            match = re.search(r"inbox\.body: ([\d,]+) values checked", line)
            if match and int(match.group(1).replace(",", "")) >= 400:
                process.send_signal(signal.SIGKILL)
                break
        assert process.wait(timeout=60) == -signal.SIGKILL
    new = MasterKey.from_text(next_key_file_for(db).read_text())
    midway = asyncio.run(sealed_under(url, new))
    assert midway[0] > 0 and midway[1] > 0  # really midway: some values under each key
    assert asyncio.run(sealed_under(url, old))[0] == midway[1]  # and none under neither
    assert run(tmp_path, "sources", "list").returncode == 0  # meanwhile, commands open it under both keys

    finished = run(tmp_path, "--json", "master-key", "rotate")
    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout)["finished"] is True
    assert not next_key_file_for(db).exists()
    assert MasterKey.from_text(key_file_for(db).read_text()).check_value == new.check_value
    assert asyncio.run(sealed_under(url, new))[1] == 0
    verified = run(tmp_path, "--json", "verify")
    assert verified.returncode == 0, verified.stdout
    assert json.loads(verified.stdout)["bodies"] == 3000
    assert run(tmp_path, "audit", "verify").returncode == 0  # the chain's key is an index key: unchanged
    listed = json.loads(run(tmp_path, "--json", "audit", "list", "--action", "master_key.rotate").stdout)
    assert [entry["details"]["finished"] for entry in listed] == [True]  # the killed run wrote nothing
    shown = run(tmp_path, "--json", "subjects", "show", "ric", people[0]["id"])  # found through the blind index
    assert shown.returncode == 0 and json.loads(shown.stdout)["status"]


@pytest.fixture
def env_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    async def cli(url: str, *argv: str, key: str = TEST_MASTER_KEY, previous: str | None = None) -> tuple[int, Any]:
        monkeypatch.setenv("XINYONG_MASTER_KEY", key)
        if previous is None:
            monkeypatch.delenv("XINYONG_MASTER_KEY_PREVIOUS", raising=False)
        else:
            monkeypatch.setenv("XINYONG_MASTER_KEY_PREVIOUS", previous)
        capsys.readouterr()
        status = await asyncio.to_thread(cli_main, ["--db", url, "--json", *argv])
        lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("{", "["))]
        return status, json.loads(lines[-1]) if lines else None  # the command's JSON, after the gateway's log lines

    return cli


async def test_online_rotation_while_the_gateway_serves_under_both_keys(
    database_url: str, env_cli: Any, aiohttp_client: Any
) -> None:
    assert (await env_cli(database_url, "migrate"))[0] == 0
    _, source = await env_cli(database_url, "sources", "add", "--kind", "marketplace", "--name", "商城")
    _, issued = await env_cli(database_url, "keys", "add", "--name", "k", "--scopes", "screen,changes")
    secret = SigningSecret.parse(source["secret"])
    rng = random.Random(77)
    people = [person(rng) for _ in range(20)]
    # The gateway restarted with the new key and the previous one, before the rotation begins.
    settings = GatewaySettings(
        database_url=database_url, master_key=NEW_KEY, master_key_previous=TEST_MASTER_KEY, source_refresh_interval=0.2
    )
    client = await aiohttp_client(create_app(settings))
    accepted: list[str] = []

    async def post(n: int) -> None:
        raw = json.dumps(event("complaint.filed", rng, merchant=rng.choice(people)), ensure_ascii=False).encode()
        headers = signature_headers(secret, f"msg_{n}", raw, timestamp=int(time.time()))
        headers["Content-Type"] = "application/json"
        response = await client.post(f"/v1/webhooks/{source['source_id']}", data=raw, headers=headers)
        assert response.status == 202, await response.text()
        accepted.append(f"msg_{n}")

    for n in range(300):  # sealed under the new key by the gateway (the CLI-made rows are under the old one)
        await post(n)
    rotation = asyncio.create_task(env_cli(database_url, "master-key", "rotate", "--page", "25", key=NEW_KEY,
                                           previous=TEST_MASTER_KEY))  # fmt: skip
    n = 300
    while not rotation.done():  # the gateway keeps accepting events while the rotation runs
        await post(n)
        n += 1
    status, result = await rotation
    assert status == 0 and result["finished"] is True
    for extra in range(n, n + 20):
        await post(extra)
    new = MasterKey.from_text(NEW_KEY)
    assert (await sealed_under(database_url, new))[1] == 0
    screened = await client.post(
        "/v1/screenings",
        json={"subjects": [{"id_type": "ric", "id": people[0]["id"]}]},
        headers={"Authorization": f"Bearer {issued['api_key']}"},
    )
    assert screened.status == 200, await screened.text()  # API-key digest and blind index: unchanged index keys
    # From now on the new key alone opens everything; the old one alone is refused with a sentence.
    assert (await env_cli(database_url, "project", "--once", key=NEW_KEY))[0] == 0
    status, verified = await env_cli(database_url, "verify", key=NEW_KEY)
    assert (status, verified["bodies"], verified["differing_files"]) == (0, len(accepted), 0)
    assert (await env_cli(database_url, "audit", "verify", key=NEW_KEY))[0] == 0
    assert (await env_cli(database_url, "sources", "list", key=TEST_MASTER_KEY))[0] == 1


async def test_a_process_holding_only_the_old_key_is_refused_while_a_rotation_is_unfinished(database_url: str) -> None:
    old, new = MasterKey.from_text(TEST_MASTER_KEY), MasterKey.from_text(NEW_KEY)
    async with open_store(database_url, create=True) as store:
        await store.migrate()
        await unlock_with(store, old, None)
        await store.lifecycle().write_meta(
            {"master_key_check": new.check_value, "master_key_check_previous": old.check_value}
        )  # fmt: skip  -- as `rotate` begins
        with pytest.raises(MasterKeyError, match="XINYONG_MASTER_KEY holds the previous key"):
            await unlock_with(store, old, None)
        with pytest.raises(MasterKeyError, match="rotation of this database is unfinished"):
            await unlock_with(store, new, None)
        both = await unlock_with(store, new, old)
        assert both.subject_key("ric", "x") == old.subject_key("ric", "x")  # the blind index keeps its key


def test_rotate_says_which_keys_it_needs(tmp_path: Path) -> None:
    assert run(tmp_path, "migrate").returncode == 0
    only_new = run(tmp_path, "master-key", "rotate", XINYONG_MASTER_KEY=NEW_KEY)
    assert only_new.returncode == 2 and "XINYONG_MASTER_KEY_PREVIOUS" in only_new.stderr
    same = run(tmp_path, "master-key", "rotate", XINYONG_MASTER_KEY=NEW_KEY, XINYONG_MASTER_KEY_PREVIOUS=NEW_KEY)
    assert same.returncode == 2 and "same key" in same.stderr
    wrong = run(
        tmp_path, "master-key", "rotate", XINYONG_MASTER_KEY=TEST_MASTER_KEY, XINYONG_MASTER_KEY_PREVIOUS=NEW_KEY
    )
    assert wrong.returncode == 1 and "does not match" in wrong.stderr
    assert run(tmp_path, "master-key").returncode == 0  # with no action: a new key, as before


def test_every_sealed_column_of_the_schema_is_in_the_registry() -> None:
    """A BLOB/BYTEA column added by any migration is either registered (rotation re-seals it) or known not to be
    sealed: a feature adding a sealed column without its registry line fails here."""
    from importlib import resources

    not_sealed = {
        "inbox.body_digest",  # keyed digests under the index keys
        "api_keys.secret_digest",
        "signing_keys.public_key",  # an attestation key's public half, published in the JWKS
    }
    registered = {column.name for column in SEALED_COLUMNS}
    for backend, kind in (("sqlite", "BLOB"), ("postgresql", "BYTEA")):
        found: set[str] = set()
        for migration in (resources.files("xinyong_gateway.store") / "migrations" / backend).iterdir():
            text = migration.read_text(encoding="utf-8") if migration.name.endswith(".sql") else ""
            for table, body in re.findall(r"CREATE TABLE (\w+) \((.*?)\n\);", text, flags=re.S):
                found |= {f"{table}.{col}" for col in re.findall(rf"^\s+(\w+)\s+{kind}\b", body, flags=re.M)}
            found |= {f"{t}.{c}" for t, c in re.findall(rf"ALTER TABLE (\w+) ADD COLUMN (\w+) {kind}\b", text)}
        assert found - not_sealed == registered, backend


def test_rotation_is_skipped_on_a_database_not_yet_created(tmp_path: Path) -> None:
    missing = run(tmp_path, "master-key", "rotate")
    assert missing.returncode == 2 and "migrate" in missing.stderr
    assert not (tmp_path / "var").exists()
