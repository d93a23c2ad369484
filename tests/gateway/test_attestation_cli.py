"""Attestations from the command lines, on each backend: ``xinyong-gateway migrate`` makes the first signing key and
``signing-keys rotate|list`` manage them (each recorded in the audit log); a marketplace gets an attestation with the
SDK's ``Client.attest`` and checks it with ``xinyong attest verify FILE --jwks URL|FILE`` (exit 0, 1 or 2)."""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from tests.factories import make_uscc
from tests.gateway.conftest import TEST_MASTER_KEY, Gateway, cli_json
from xinyong import Client
from xinyong.cli import main as xinyong_main
from xinyong_gateway.cli import main as gateway_main
from xinyong_gateway.web.app import SIGNING_KEYS

RUN_PROJECTOR = False

SHOP = {"id_type": "uscc", "id": make_uscc(random.Random(71)), "name": "诚信小店"}


@pytest.fixture(autouse=True)
def operator_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The commands read only the master key from the environment; the gateway's own log lines are dropped (it
    serves in this process, and would print on the stdout the commands' output is read from)."""
    for name in list(os.environ):
        if name.startswith("XINYONG_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)
    monkeypatch.setenv("LOGNAME", "keeper")
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    yield
    structlog.reset_defaults()


async def gateway_cli(capsys: pytest.CaptureFixture[str], gateway: Gateway, *argv: str) -> Any:
    capsys.readouterr()
    status = await asyncio.to_thread(gateway_main, ["--db", gateway.settings.database_url, "--json", *argv])
    out, err = capsys.readouterr()
    assert status == 0, err
    return json.loads(out)


async def xinyong(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = await asyncio.to_thread(xinyong_main, list(argv))
    out, err = capsys.readouterr()
    return status, out, err


async def test_signing_keys_rotate_and_list_are_audited_and_show_no_key_material(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    [first] = await gateway_cli(capsys, gateway, "signing-keys", "list")
    assert (first["status"], first["algorithm"], first["retired_at"]) == ("current", "EdDSA", None)
    rotated = await gateway_cli(capsys, gateway, "signing-keys", "rotate")
    assert rotated["status"] == "current" and rotated["retired"] == [first["kid"]]
    listed = await gateway_cli(capsys, gateway, "signing-keys", "list")
    assert [(k["kid"], k["status"]) for k in listed] == [(first["kid"], "retired"), (rotated["kid"], "current")]
    assert set(listed[0]) == {"kid", "algorithm", "status", "created_at", "retired_at"}
    entries = await gateway_cli(capsys, gateway, "audit", "list", "--action", "signing_keys.rotate")
    assert [(e["actor"], e["target"], e["details"]) for e in entries] == [
        ("keeper", rotated["kid"], {"algorithm": "EdDSA"})
    ]
    listings = await gateway_cli(capsys, gateway, "audit", "list", "--action", "signing_keys.list")
    assert [e["details"] for e in listings] == [{"keys": 1}, {"keys": 2}]
    assert (await gateway_cli(capsys, gateway, "migrate"))["signing_key"] is None  # it has keys: none is made
    assert (await gateway_cli(capsys, gateway, "audit", "verify"))["intact"] is True


def test_migrate_makes_the_first_signing_key_once_and_records_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    made = cli_json("--db", url, "migrate")["signing_key"]
    assert isinstance(made, str) and len(made) == 43  # an RFC 7638 thumbprint, base64url of SHA-256
    assert cli_json("--db", url, "migrate")["signing_key"] is None
    [entry] = cli_json("--db", url, "audit", "list", "--action", "signing_keys.create")
    assert (entry["target"], entry["details"]) == (made, {"algorithm": "EdDSA"})
    assert [key["kid"] for key in cli_json("--db", url, "signing-keys", "list")] == [made]


async def test_a_marketplace_gets_an_attestation_with_the_sdk_and_verifies_it_from_the_command_line(
    gateway: Gateway, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    issued = await gateway.add_api_key(["attest"])
    async with Client(gateway.base_url, issued.api_key) as client:
        token = await client.attest(SHOP)
        jwks = await client.signing_keys()
    token_file, jwks_file = tmp_path / "check.jws", tmp_path / "jwks.json"
    token_file.write_text(token + "\n")
    jwks_file.write_text(json.dumps(jwks))
    jwks_url = f"{gateway.base_url}/.well-known/jwks.json"

    status, out, err = await xinyong(capsys, "attest", "verify", str(token_file), "--jwks", jwks_url, "--json")
    assert (status, err) == (0, "")
    claims = json.loads(out)
    assert (claims["sub"], claims["aud"], claims["list"]) == (f"uscc:{SHOP['id']}", issued.record.key_id, "none")
    answer_file = tmp_path / "answer.json"
    answer_file.write_text(json.dumps({"attestation": token}))
    status, out, _ = await xinyong(capsys, "attest", "verify", str(answer_file), "--jwks", str(jwks_file), "--json")
    assert status == 0 and json.loads(out)["jti"] == claims["jti"]

    header, payload, signature = token.split(".")
    flipped = "B" if signature[10] != "B" else "C"
    token_file.write_text(f"{header}.{payload}.{signature[:10]}{flipped}{signature[11:]}")
    status, out, err = await xinyong(capsys, "attest", "verify", str(token_file), "--jwks", str(jwks_file))
    assert (status, out) == (1, "")
    assert err.startswith("xinyong attest: not trusted: The attestation's signature does not match")

    # After a rotation the old attestation still verifies against the new JWKS; a JWKS without its key does not.
    token_file.write_text(token)
    await gateway_cli(capsys, gateway, "signing-keys", "rotate")
    app = gateway.client.app
    assert app is not None
    await app[SIGNING_KEYS].refresh()
    status, _, _ = await xinyong(capsys, "attest", "verify", str(token_file), "--jwks", jwks_url)
    assert status == 0
    jwks_file.write_text(json.dumps({"keys": [k for k in jwks["keys"] if k["status"] == "retired"]}))
    status, _, err = await xinyong(capsys, "attest", "verify", str(token_file), "--jwks", str(jwks_file))
    assert status == 1 and "has no key with kid" in err

    status, _, err = await xinyong(capsys, "attest", "verify", str(tmp_path / "missing"), "--jwks", str(jwks_file))
    assert status == 2 and "Cannot read the attestation" in err
