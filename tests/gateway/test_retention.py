"""Retention (``retention run``, ``credit/retention.py``): a body whose time is up under ``[retention]`` loses the
persons it names, a person all of whose bodies are erased is forgotten, and no list changes — on both backends."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.factories import event, make_ric, make_uscc, person
from tests.gateway.conftest import TEST_MASTER_KEY, Gateway, eventually
from xinyong import ric_pseudonym
from xinyong_gateway.cli import main as cli_main
from xinyong_gateway.sealed_columns import SEALED_COLUMNS
from xinyong_gateway.store import Store, SubjectRow
from xinyong_gateway.web.app import create_app

RUN_PROJECTOR = False
"""The gateway without its built-in projector: these tests drive projection themselves."""

OLD = datetime(2012, 3, 1, 8, 0, tzinfo=UTC).isoformat()
"""Long enough ago that every record it starts has ended more than the default retention (3 + 5 years) ago."""


@pytest.fixture
def cli(gateway: Gateway, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    monkeypatch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)
    url = gateway.settings.database_url

    async def run(*argv: str) -> tuple[int, Any]:
        capsys.readouterr()
        status = await asyncio.to_thread(cli_main, ["--db", url, "--json", *argv])
        captured = capsys.readouterr()
        return status, json.loads(captured.out) if captured.out.strip() else None

    return run


async def opened_plaintexts(gateway: Gateway) -> list[bytes]:
    """Every sealed value in the database, opened with the master key (what someone holding it could read)."""
    lifecycle, found = gateway.store.lifecycle(), []
    for column in SEALED_COLUMNS:
        after = None
        while rows := await lifecycle.read_sealed(column, after, 500):
            found += [column.open(gateway.master_key, row.bound, row.sealed) for row in rows]
            after = rows[-1].key
    return found


async def every_subject(store: Store) -> dict[str, SubjectRow]:
    keys = [key for key, _ in await store.lifecycle().subject_states("", 10_000)]
    return await store.load_subjects(keys)


async def test_retention_erases_old_persons_and_changes_no_list(gateway: Gateway, cli: Any) -> None:
    rng = random.Random(2219)
    gone = person(rng, name="李旧人")  # only old facts: erased and forgotten
    mixed = person(rng, name="张两期")  # an old fact and a recent one: the old body erased, the person kept
    recent = person(rng, name="王现今")  # a recent black-list fact: kept
    company = {"id_type": "uscc", "id": make_uscc(rng), "name": "旧事网店有限公司"}  # no person: kept
    bodies = [
        event("listing.violation", rng, merchant=gone, found_at=OLD),
        event("complaint.filed", rng, merchant=gone, filed_at=OLD),
        event("complaint.filed", rng, merchant=mixed, filed_at=OLD),
        event("complaint.filed", rng, merchant=mixed),
        event("listing.violation", rng, merchant=recent),
        event("listing.violation", rng, merchant=company, found_at=OLD),
    ]
    await gateway.post_and_project(bodies, "old")
    before = await every_subject(gateway.store)
    plaintexts = b"\n".join(await opened_plaintexts(gateway))
    assert gone["id"].encode() in plaintexts and gone["name"].encode() in plaintexts  # the check below can fail

    status, planned = await cli("retention", "run", "--dry-run")
    assert (status, planned["due"], planned["erased"], planned["subjects_due"]) == (0, 3, 0, 1)
    status, done = await cli("retention", "run")
    assert (status, done["erased"], done["subjects_forgotten"]) == (0, 3, 1)

    after = await every_subject(gateway.store)
    assert {key: (row.status, row.state) for key, row in after.items()} == {
        key: (row.status, row.state) for key, row in before.items()
    }
    plaintexts = b"\n".join(await opened_plaintexts(gateway))
    assert gone["id"].encode() not in plaintexts and gone["name"].encode() not in plaintexts
    assert mixed["id"].encode() in plaintexts and recent["id"].encode() in plaintexts
    assert company["id"].encode() in plaintexts

    status, verified = await cli("verify")  # the erased log still replays to the same files
    assert (status, verified["erased"], verified["differing_files"], verified["files_compared"]) == (0, 3, 0, True)
    status, again = await cli("retention", "run")
    assert (status, again["erased"], again["already_erased"]) == (0, 0, 3)


async def test_a_forgotten_person_is_still_screened_but_never_revealed(gateway: Gateway, cli: Any) -> None:
    rng = random.Random(2220)
    gone = person(rng, name="赵久远")
    await gateway.post_and_project([event("listing.violation", rng, merchant=gone, found_at=OLD)], "gone")
    status, shown = await cli("subjects", "show", "ric", gone["id"])
    assert status == 0
    assert (await cli("retention", "run"))[0] == 0
    status, revealed = await cli("subjects", "show", "ric", gone["id"], "--reveal")
    assert status == 0
    assert revealed["subject"]["erased"] is True and gone["id"] not in json.dumps(revealed, ensure_ascii=False)
    assert revealed["status"] | {"subject": None} == shown["status"] | {"subject": None}  # the same standing


async def test_retention_keeps_bodies_until_the_policy_says(gateway: Gateway, cli: Any, tmp_path: Any) -> None:
    rng = random.Random(2221)
    await gateway.post_and_project([event("complaint.filed", rng, merchant=person(rng), filed_at=OLD)], "keep")
    policy = tmp_path / "long.toml"
    from tests.gateway.conftest import DEFAULT_POLICY_TEXT

    policy.write_text(DEFAULT_POLICY_TEXT + '\n[retention]\nkeep_bodies_for = "9999d"\n', encoding="utf-8")
    status, planned = await cli("retention", "run", "--dry-run", "--policy", str(policy))
    assert (status, planned["due"], planned["keep_days"]) == (0, 0, 9999)
    status, planned = await cli("retention", "run", "--dry-run")
    assert (status, planned["due"], planned["keep_days"]) == (0, 1, 1095 + 5 * 365)


def test_policy_check_explains_and_validates_retention(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.gateway.conftest import DEFAULT_POLICY_TEXT

    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(DEFAULT_POLICY_TEXT + '\n[retention]\nkeep_bodies_for = "3650d"\n', encoding="utf-8")
    bad.write_text(DEFAULT_POLICY_TEXT + '\n[retention]\nkeep_bodies_for = "ten years"\n', encoding="utf-8")
    assert cli_main(["--json", "policy", "check", str(good)]) == 0
    assert "3650 days" in json.loads(capsys.readouterr().out)["retention"]
    assert cli_main(["--json", "policy", "check", str(bad)]) == 1
    assert "retention.keep_bodies_for" in capsys.readouterr().err


def test_stand_in_identifiers_are_valid_and_name_nobody() -> None:
    from xinyong.subjects import validate_ric
    from xinyong_gateway.credit.inbox import _stand_in

    assert validate_ric(_stand_in(1)) == _stand_in(1) and _stand_in(1) != make_ric(random.Random(1))


async def test_serve_runs_retention_on_its_own_and_records_it(gateway: Gateway, aiohttp_client: Any) -> None:
    rng = random.Random(2222)
    gone = person(rng, name="钱往昔")
    await gateway.post_and_project([event("complaint.filed", rng, merchant=gone, filed_at=OLD)], "serve")
    settings = gateway.settings.model_copy(update={"retention_interval": 0.05, "projector": True})
    await aiohttp_client(create_app(settings))  # a second gateway process, with the job

    async def recorded() -> bool:
        return bool(await gateway.store.latest_audit_entries(10, action="retention.run"))

    await eventually(recorded, within=20)
    (entry,) = await gateway.store.latest_audit_entries(10, action="retention.run")
    assert (entry.actor, json.loads(entry.details)) == ("serve", {"erased": 1, "forgotten": 1, "keep_days": 2920})
    plaintexts = b"\n".join(await opened_plaintexts(gateway))
    assert gone["id"].encode() not in plaintexts


async def test_the_change_feed_names_a_forgotten_person_by_a_pseudonym_that_matches_no_number(
    gateway: Gateway, cli: Any
) -> None:
    rng = random.Random(2223)
    gone = person(rng, name="孙昔日")
    await gateway.post_and_project([event("listing.violation", rng, merchant=gone, found_at=OLD)], "feed")
    issued = await gateway.add_api_key(("changes",))
    secret = issued.lookup_secret

    async def pseudonyms() -> list[str]:
        response = await gateway.client.get("/v1/lists/changes", headers={"Authorization": f"Bearer {issued.api_key}"})
        assert response.status == 200, await response.text()
        return [entry["subject"]["pseudonym"] for entry in (await response.json())["changes"]]

    before = await pseudonyms()
    assert before and set(before) == {ric_pseudonym(gone["id"], secret)}
    assert (await cli("retention", "run"))[0] == 0
    after = await pseudonyms()
    assert len(after) == len(before) and len(set(after)) == 1 and ric_pseudonym(gone["id"], secret) not in after
