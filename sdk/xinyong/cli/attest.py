"""``xinyong attest verify FILE --jwks URL|FILE``: check an attestation offline (:func:`xinyong.verify_attestation`).

FILE holds the attestation: the compact JWS as it is, or the gateway's answer ``{"attestation": "…"}`` (``-`` reads
stdin). ``--jwks`` is the gateway's JWK Set: a file, or its URL (``https://…/.well-known/jwks.json``), fetched once.
Exit status 0 when the attestation verifies (its claims are printed), 1 when it must not be trusted (one sentence
saying why: a changed byte, an unknown ``kid``, a wrong algorithm), 2 when it could not be checked (a file or the
JWKS could not be read).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xinyong.attestations import Attestation, verify_attestation
from xinyong.errors import AttestationError

from ._common import EXIT_OK, EXIT_SOME_BAD, PARSER_OPTIONS, CliError, emit

__all__ = ["add_parser"]

_JWKS_LIMIT = 1 << 20
_EPILOG = """\
examples:
  $ xinyong attest verify onboarding-check.jws --jwks https://credit.example.gov.cn/.well-known/jwks.json
  $ xinyong attest verify answer.json --jwks jwks.json --json

The attestation comes from POST /v1/attestations (an API key with the scope attest; Client.attest in the SDK).
Verifying needs no API key and no network beyond the JWKS: keep a copy of the JWKS to verify fully offline.
"""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "attest",
        help="verify a signed attestation of a subject's credit status, offline",
        description="Work with attestations: the gateway's signed statements of a subject's status at one instant.",
        epilog=_EPILOG,
        **PARSER_OPTIONS,
    )
    actions = parser.add_subparsers(title="actions", dest="attest_command", metavar="ACTION", required=True)
    verify = actions.add_parser(
        "verify",
        help="check an attestation against the gateway's public keys (exit status 1 when it must not be trusted)",
        description="Check an attestation's signature, algorithm and key id against a JWK Set, and print its claims.",
        epilog=_EPILOG,
        **PARSER_OPTIONS,
    )
    verify.add_argument("file", metavar="FILE", help="the attestation (compact JWS, or the gateway's JSON answer); -")
    verify.add_argument("--jwks", required=True, metavar="URL|FILE", help="the gateway's JWK Set, a URL or a file")
    verify.add_argument("--issuer", metavar="ISS", help="also require this iss (the gateway's XINYONG_ISSUER)")
    verify.add_argument("--json", action="store_true", help="print the claims as JSON even on a terminal")
    verify.set_defaults(handler=_cmd_verify)


def _read_token(path: str) -> str:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"Cannot read the attestation {path}: {getattr(exc, 'strerror', None) or exc}.") from None
    text = text.strip()
    if text.startswith("{"):
        try:
            answer = json.loads(text)
        except ValueError:
            raise CliError(f"{path} is neither a compact JWS nor the gateway's JSON answer.") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("attestation"), str):
            raise CliError(f'{path} is JSON without an "attestation" member.')
        return str(answer["attestation"])
    return text


def _read_jwks(source: str) -> str:
    if source.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(source, timeout=10) as response:  # noqa: S310 -- http(s) only, checked above
                return bytes(response.read(_JWKS_LIMIT)).decode("utf-8")
        except (urllib.error.URLError, OSError, UnicodeDecodeError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise CliError(f"Cannot fetch the JWKS from {source} ({reason}).") from None
    try:
        return Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"Cannot read the JWKS {source}: {getattr(exc, 'strerror', None) or exc}.") from None


def _human(claims: Attestation) -> str:
    signed = datetime.fromtimestamp(claims.iat, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    subject = claims.subject
    name = f" {subject.name}" if subject.name else ""
    grade = claims.grade or "no grade"
    measures = f"; measures {', '.join(claims.measures)}" if claims.measures else ""
    return (
        f"Valid attestation {claims.jti}, signed by {claims.iss} at {signed} for API key {claims.aud}.\n"
        f"  {subject.id_type} {subject.id}{name}: list {claims.list}, {grade}{measures}"
        f" (policy {claims.policy_version}, as of {claims.as_of.isoformat()})"
    )


def _cmd_verify(args: argparse.Namespace) -> int:
    token = _read_token(args.file)
    jwks = _read_jwks(args.jwks)
    try:
        claims = verify_attestation(token, jwks, issuer=args.issuer)
    except AttestationError as exc:
        sys.stderr.write(f"xinyong attest: not trusted: {exc}\n")
        return EXIT_SOME_BAD
    emit(claims.model_dump(mode="json"), _human(claims), force_json=args.json)
    return EXIT_OK
