"""``xinyong keygen``: a usable Ed25519 key pair, JSON for programs, prose on a terminal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from xinyong import __version__
from xinyong.cli import main
from xinyong.webhooks import SigningKey, VerifyingKey, WebhookVerifier, signature_headers

BODY = b'{"type": "delivery.recorded", "data": {}}'


def assert_pair_matches(pair: dict[str, str]) -> None:
    signing_key = SigningKey.parse(pair["signing_key"])
    public_key = VerifyingKey.parse(pair["public_key"])
    assert signing_key.public_key == public_key
    headers = signature_headers(signing_key, "msg_keygen", BODY, timestamp=1_700_000_000)
    WebhookVerifier([pair["public_key"]], clock=lambda: 1_700_000_000).verify(headers, BODY)


def test_keygen_json_prints_one_object_with_a_matching_key_pair(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen", "--json"]) == 0
    out, err = capsys.readouterr()
    pair = json.loads(out)
    assert set(pair) == {"signing_key", "public_key"}
    assert pair["signing_key"].startswith("whsk_") and pair["public_key"].startswith("whpk_")
    assert_pair_matches(pair)
    assert out.count("\n") == 1
    assert err == ""


def test_keygen_prints_json_when_stdout_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen"]) == 0
    assert_pair_matches(json.loads(capsys.readouterr().out))


def test_keygen_creates_a_new_pair_every_time(capsys: pytest.CaptureFixture[str]) -> None:
    main(["keygen", "--json"])
    first = json.loads(capsys.readouterr().out)
    main(["keygen", "--json"])
    second = json.loads(capsys.readouterr().out)
    assert first["signing_key"] != second["signing_key"]
    assert first["public_key"] != second["public_key"]


def test_keygen_on_a_terminal_prints_both_keys_and_the_registration_hint(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["keygen"]) == 0
    out = capsys.readouterr().out
    words = out.split()
    signing_key = next(word for word in words if word.startswith("whsk_"))
    public_key = next(word for word in words if word.startswith("whpk_"))
    assert_pair_matches({"signing_key": signing_key, "public_key": public_key})
    assert "secret" in out
    assert f"xinyong-gateway sources add --kind courier --name NAME --public-key {public_key}" in out


def test_keygen_json_flag_wins_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["keygen", "--json"]) == 0
    assert_pair_matches(json.loads(capsys.readouterr().out))


@pytest.mark.parametrize("argv", [["--help"], ["keygen", "--help"]])
def test_help_exits_zero(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 0
    assert "keygen" in capsys.readouterr().out


def test_keygen_help_shows_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    main(["keygen", "--help"])
    out = capsys.readouterr().out
    assert "example:" in out
    assert "xinyong keygen --json" in out
    assert "xinyong-gateway sources add --kind courier" in out


def test_missing_command_is_a_usage_error_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "required" in err
    assert "Traceback" not in err


def test_unknown_command_is_a_usage_error_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"xinyong {__version__}"


@pytest.mark.slow
def test_installed_console_script_prints_json_when_not_a_tty() -> None:
    script = Path(sys.executable).parent / "xinyong"
    result = subprocess.run([str(script), "keygen"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert_pair_matches(json.loads(result.stdout))
