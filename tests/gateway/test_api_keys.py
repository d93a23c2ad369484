"""API keys: issued from the command line, stored only as digests, checked on every query (401, 403, 429)."""

from __future__ import annotations

import contextlib
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.gateway.conftest import PROBLEM_JSON, Gateway, assert_problem, at_rest_holding, eventually, is_sqlite
from xinyong import problems
from xinyong_gateway import cli
from xinyong_gateway.access import add_api_key, parse_api_key
from xinyong_gateway.errors import ApiKeyNotFoundError
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.store import to_micros

RUN_PROJECTOR = False
"""Nothing here needs credit files."""

SCREENING = {"subjects": [{"id_type": "uscc", "id": "91320706MA1Y2N6Q47"}]}


@pytest.fixture
def gateway_settings(gateway_settings: GatewaySettings) -> GatewaySettings:
    """Keys reload every 0.2 s here, so a revocation shows within a test's patience."""
    return gateway_settings.model_copy(update={"api_key_refresh_interval": 0.2})


async def screen(gateway: Gateway, authorization: str | None) -> Any:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return await gateway.client.post("/v1/screenings", json=SCREENING, headers=headers)


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(list(args))
    return status, out.getvalue(), err.getvalue()


# -- the store ----------------------------------------------------------------------------------------------


async def test_store_keeps_keys_with_scopes_and_revocation_time(gateway: Gateway) -> None:
    now = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    issued = await add_api_key(
        gateway.store, gateway.master_key, name="云购商城", scopes=["screen"], rate_limit=50.0, now=now
    )
    [listed] = await gateway.store.list_api_keys()
    assert listed == issued.record
    assert (listed.name, listed.scopes, listed.rate_limit, listed.created_at, listed.status) == (
        "云购商城",
        ("screen",),
        50.0,
        to_micros(now),
        "active",
    )
    revoked = await gateway.store.revoke_api_key(listed.key_id, now=to_micros(now.replace(hour=9)))
    again = await gateway.store.revoke_api_key(listed.key_id, now=to_micros(now.replace(hour=10)))
    assert revoked.revoked_at == again.revoked_at == to_micros(now.replace(hour=9))
    assert again.status == "revoked"


async def test_revoking_an_unknown_key_raises_not_found(gateway: Gateway) -> None:
    with pytest.raises(ApiKeyNotFoundError, match="key_nope"):
        await gateway.store.revoke_api_key("key_nope", now=to_micros(datetime.now(UTC)))


async def test_neither_the_key_nor_its_lookup_secret_is_stored(gateway: Gateway) -> None:
    issued = await gateway.add_api_key()
    key_id, secret = parse_api_key(issued.api_key) or ("", "")
    lookup = issued.lookup_secret.removeprefix("xyls_")
    needles = [issued.api_key.encode(), secret.encode(), lookup.encode()]
    if is_sqlite(gateway.settings.database_url):  # PostgreSQL rows are searched as text, where bytea shows as hex
        needles.append(bytes.fromhex(lookup))
    assert await at_rest_holding(gateway.settings.database_url, needles) == []
    assert (await gateway.store.list_api_keys())[0].secret_digest == gateway.master_key.api_key_digest(key_id, secret)


# -- the command line ---------------------------------------------------------------------------------------


def test_cli_adds_lists_and_revokes_keys(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XINYONG_DATABASE_URL", f"sqlite:///{tmp_path / 'keys.db'}")
    assert run_cli("migrate")[0] == 0
    status, out, _ = run_cli(
        "--json", "keys", "add", "--name", "云购商城", "--scopes", "changes,screen", "--rate", "20"
    )
    assert status == 0
    added = json.loads(out)
    assert added["key_id"].startswith("key_")
    assert added["api_key"].startswith("xyk_")
    assert parse_api_key(added["api_key"]) is not None
    assert parse_api_key(added["api_key"])[0] == added["key_id"]  # type: ignore[index]
    assert added["lookup_secret"].startswith("xyls_")
    assert (added["scopes"], added["rate_limit"], added["status"]) == (["screen", "changes"], 20.0, "active")

    status, out, _ = run_cli("--json", "keys", "list")
    listed = json.loads(out)
    assert [key["key_id"] for key in listed] == [added["key_id"]]
    assert "api_key" not in listed[0]
    assert "lookup_secret" not in listed[0]
    assert added["api_key"].split("_")[-1] not in out

    status, out, _ = run_cli("--json", "keys", "revoke", added["key_id"])
    assert status == 0
    assert json.loads(out)["status"] == "revoked"


def test_cli_refuses_unknown_scopes_and_unknown_keys_in_one_sentence(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XINYONG_DATABASE_URL", f"sqlite:///{tmp_path / 'keys.db'}")
    assert run_cli("migrate")[0] == 0
    with pytest.raises(SystemExit) as exited:
        cli.main(["keys", "add", "--name", "x", "--scopes", "screen,admin"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.endswith(
        "error: argument --scopes: unknown scope 'admin': the scopes are screen, changes, cases, attest, subscribe"
        " (comma-separated)\n"
    )
    status, _, err = run_cli("keys", "revoke", "key_unknown")
    assert status == 1
    assert err.strip() == "xinyong-gateway: error: No API key with id 'key_unknown'."


def test_cli_links_a_cases_key_to_existing_sources_only(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XINYONG_DATABASE_URL", f"sqlite:///{tmp_path / 'keys.db'}")
    assert run_cli("migrate")[0] == 0
    status, _, err = run_cli("keys", "add", "--name", "x", "--scopes", "cases")
    assert status == 2
    assert "name them with --sources" in err
    status, _, err = run_cli("keys", "add", "--name", "x", "--scopes", "cases", "--sources", "src_nosuchsource")
    assert (status, err.strip()) == (
        2,
        "xinyong-gateway: error: No source with id 'src_nosuchsource' (see `xinyong-gateway sources list`).",
    )
    source = json.loads(run_cli("--json", "sources", "add", "--kind", "marketplace", "--name", "云购商城")[1])
    status, out, _ = run_cli(
        "--json", "keys", "add", "--name", "云购商城 cases", "--scopes", "cases", "--sources", source["source_id"]
    )
    assert status == 0
    assert (json.loads(out)["scopes"], json.loads(out)["sources"]) == (["cases"], [source["source_id"]])
    assert json.loads(run_cli("--json", "keys", "list")[1])[0]["sources"] == [source["source_id"]]


# -- authentication (every endpoint by every kind of credential: test_authorization.py) ------------------------


async def test_a_key_added_from_outside_works_on_its_first_request(gateway: Gateway) -> None:
    """Added straight to the store (as `keys add` does from another process): an unknown id reloads the keys."""
    issued = await add_api_key(
        gateway.store, gateway.master_key, name="new", scopes=["screen"], rate_limit=None, now=datetime.now(UTC)
    )
    assert (await screen(gateway, f"Bearer {issued.api_key}")).status == 200


async def test_after_a_key_worked_another_secret_under_its_id_is_still_refused(gateway: Gateway) -> None:
    """The gateway remembers the last secret that verified (one comparison instead of an HMAC): only that one."""
    issued = await gateway.add_api_key()
    assert (await screen(gateway, f"Bearer {issued.api_key}")).status == 200
    prefix, _, secret = issued.api_key.rpartition("_")
    forged = f"{prefix}_{'0' * len(secret) if secret != '0' * len(secret) else '1' * len(secret)}"
    await assert_problem(await screen(gateway, f"Bearer {forged}"), 401, problems.API_KEY_INVALID)
    assert (await screen(gateway, f"Bearer {issued.api_key}")).status == 200


async def test_a_revoked_key_stops_working_within_the_refresh_interval(gateway: Gateway) -> None:
    issued = await gateway.add_api_key()
    authorization = f"Bearer {issued.api_key}"
    assert (await screen(gateway, authorization)).status == 200
    await gateway.store.revoke_api_key(issued.record.key_id, now=to_micros(datetime.now(UTC)))  # as `keys revoke` does

    async def refused() -> bool:
        return (await screen(gateway, authorization)).status == 401

    await eventually(refused, within=3.0)  # the interval is 0.2 s here (2 s by default)


async def test_a_key_over_its_rate_gets_429_with_retry_after(gateway: Gateway) -> None:
    issued = await gateway.add_api_key(rate=1.0)
    authorization = f"Bearer {issued.api_key}"
    assert (await screen(gateway, authorization)).status == 200
    response = await screen(gateway, authorization)
    await assert_problem(response, 429, problems.RATE_LIMITED)
    assert response.headers["Retry-After"] == "1"
    other = await gateway.add_api_key()
    assert (await screen(gateway, f"Bearer {other.api_key}")).status == 200  # buckets are per key


async def test_the_log_line_names_the_key_never_its_secret(gateway: Gateway, gateway_log: io.StringIO) -> None:
    issued = await gateway.add_api_key()
    assert (await screen(gateway, f"Bearer {issued.api_key}")).status == 200
    lines = [json.loads(line) for line in gateway_log.getvalue().splitlines() if line.strip()]
    requests = [line for line in lines if line.get("event") == "request" and line.get("path") == "/v1/screenings"]
    assert requests
    assert requests[-1]["key_id"] == issued.record.key_id
    secret = (parse_api_key(issued.api_key) or ("", ""))[1]
    assert secret not in gateway_log.getvalue()


async def test_problem_answers_are_problem_json(gateway: Gateway) -> None:
    response = await screen(gateway, "Bearer nope")
    assert response.content_type == PROBLEM_JSON
