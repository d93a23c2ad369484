"""``xinyong.verify_attestation`` offline: a token verifies against its JWKS, and any change to it is a clear error.

Tokens are signed here with joserfc as the gateway signs them (EdDSA over Ed25519, ``kid`` the key's thumbprint);
``tests/gateway/test_attestations.py`` verifies tokens the gateway itself signed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from joserfc import jws
from joserfc.jwk import OKPKey

from xinyong import (
    AlgorithmNotAllowedError,
    AttestationError,
    AttestationSignatureError,
    MalformedAttestationError,
    UnknownKeyIdError,
    XinyongError,
    verify_attestation,
)
from xinyong.attestations import ATTESTATION_TYPE, JWS_REGISTRY

CLAIMS: dict[str, Any] = {
    "iss": "https://credit.example.gov.cn",
    "sub": "uscc:91320706MA1Y2N6Q47",
    "aud": "key_abcdefghijklmnop",
    "iat": 1796400000,
    "jti": "att_0123456789abcdef0123456789abcdef",
    "subject": {"id_type": "uscc", "id": "91320706MA1Y2N6Q47", "name": "连云港示例网店有限公司"},
    "list": "black",
    "grade": "D",
    "score": 40,
    "measures": ["refuse_onboarding"],
    "reasons": [],
    "disputed": False,
    "policy_version": "lyg-2026.4",
    "as_of": "2026-12-05T08:00:00+00:00",
}
KEY = OKPKey.generate_key("Ed25519")
KID = KEY.thumbprint()
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def public(key: OKPKey, kid: str, **extra: Any) -> dict[str, Any]:
    return {**key.as_dict(private=False), "kid": kid, "alg": "EdDSA", "use": "sig", "status": "current", **extra}


JWKS = {"keys": [public(KEY, KID)]}


def sign(claims: dict[str, Any] | bytes = CLAIMS, *, key: OKPKey = KEY, **header: Any) -> str:
    protected = {"alg": "EdDSA", "kid": KID, "typ": ATTESTATION_TYPE, **header}
    payload = claims if isinstance(claims, bytes) else json.dumps(claims, ensure_ascii=False).encode()
    return jws.serialize_compact(protected, payload, key, registry=JWS_REGISTRY)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], signature: bytes) -> str:
    """A token with any header, CLAIMS, and ``signature`` over them (or none), made by hand."""
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(CLAIMS).encode())}.{b64(signature)}"


def test_a_token_verifies_and_gives_its_claims() -> None:
    claims = verify_attestation(sign(), JWKS, issuer=CLAIMS["iss"])
    assert claims.model_dump(mode="json")["subject"] == {**CLAIMS["subject"], "pseudonym": None}
    assert (claims.list, claims.grade, claims.aud, claims.jti) == ("black", "D", CLAIMS["aud"], CLAIMS["jti"])
    assert verify_attestation(sign().encode(), json.dumps(JWKS)).jti == claims.jti  # bytes and JSON text too


@given(data=st.data())
def test_changing_any_one_character_of_a_token_is_an_attestation_error(data: st.DataObject) -> None:
    token = sign()
    position = data.draw(st.integers(min_value=0, max_value=len(token) - 1), label="position")
    if token[position] == ".":
        replacement = data.draw(st.sampled_from(B64), label="replacement")
    else:
        replacement = data.draw(st.sampled_from(B64.replace(token[position], "") + "."), label="replacement")
    changed = token[:position] + replacement + token[position + 1 :]
    with pytest.raises(AttestationError):
        verify_attestation(changed, JWKS)


@pytest.mark.parametrize("part", [0, 1, 2], ids=["header", "payload", "signature"])
def test_a_changed_byte_in_each_part_is_refused(part: int) -> None:
    pieces = sign().split(".")
    raw = bytearray(base64.urlsafe_b64decode(pieces[part] + "=" * (-len(pieces[part]) % 4)))
    raw[len(raw) // 2] ^= 0x01
    pieces[part] = b64(bytes(raw))
    with pytest.raises(AttestationError) as caught:
        verify_attestation(".".join(pieces), JWKS)
    if part != 0:  # a flipped bit in the header's JSON may break the JSON or change a member: any refusal will do
        assert isinstance(caught.value, AttestationSignatureError)
        assert "changed after it was signed" in str(caught.value)


def test_the_last_character_of_a_part_cannot_change_unnoticed() -> None:
    """Base64url's unused low bits: two spellings of one signature; only the canonical one is accepted."""
    header, payload, signature = sign().split(".")
    last = signature[-1]
    same_bytes = B64[B64.index(last) ^ 1]  # the lowest of the (unused) bits of the 86th character
    with pytest.raises(MalformedAttestationError, match="canonical"):
        verify_attestation(f"{header}.{payload}.{signature[:-1]}{same_bytes}", JWKS)


def test_an_unknown_kid_is_named_as_such() -> None:
    other = OKPKey.generate_key("Ed25519")
    token = sign(key=other, kid=other.thumbprint())
    with pytest.raises(UnknownKeyIdError, match=r"fetch /\.well-known/jwks\.json again"):
        verify_attestation(token, JWKS)
    with pytest.raises(UnknownKeyIdError):
        verify_attestation(forged({"alg": "EdDSA", "typ": ATTESTATION_TYPE}, b"x" * 64), JWKS)  # no kid at all


def test_another_key_under_the_same_kid_does_not_verify() -> None:
    impostor = OKPKey.generate_key("Ed25519")
    with pytest.raises(AttestationSignatureError):
        verify_attestation(sign(key=impostor), JWKS)


def test_alg_none_and_hs256_with_the_public_key_as_secret_are_refused() -> None:
    with pytest.raises(AlgorithmNotAllowedError, match="only EdDSA"):
        verify_attestation(forged({"alg": "none", "kid": KID, "typ": ATTESTATION_TYPE}, b"") + "AA", JWKS)
    header = {"alg": "HS256", "kid": KID, "typ": ATTESTATION_TYPE}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(CLAIMS).encode())}".encode()
    secret = KEY.as_dict(private=False)["x"].encode()  # the classic confusion: the public key as an HMAC secret
    token = f"{signing_input.decode()}.{b64(hmac.digest(secret, signing_input, hashlib.sha256))}"
    with pytest.raises(AlgorithmNotAllowedError, match="'HS256'"):
        verify_attestation(token, JWKS)


def test_a_jwks_key_that_is_not_ed25519_for_eddsa_is_refused() -> None:
    for wrong in ({"crv": "Ed448"}, {"kty": "EC"}, {"alg": "ES256"}):
        with pytest.raises(AlgorithmNotAllowedError):
            verify_attestation(sign(), {"keys": [public(KEY, KID, **wrong)]})


def test_a_retired_key_in_the_jwks_still_verifies() -> None:
    old = OKPKey.generate_key("Ed25519")
    token = sign(key=old, kid=old.thumbprint())
    keys = {"keys": [public(old, old.thumbprint(), status="retired"), public(KEY, KID)]}
    assert verify_attestation(token, keys).jti == CLAIMS["jti"]


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "three base64url parts"),
        ("a.b", "three base64url parts"),
        ("a..c", "three base64url parts"),
        ("!!!.e30.AA", "not base64url"),
        (f"{b64(b'[1]')}.e30.AA", "not a JSON object"),
        (f"{b64(b'{')}.e30.AA", "header is not JSON"),
    ],
)
def test_what_is_not_a_compact_jws_is_malformed(token: str, message: str) -> None:
    with pytest.raises(MalformedAttestationError, match=message):
        verify_attestation(token, JWKS)


def test_another_typ_or_claims_that_do_not_parse_are_malformed() -> None:
    with pytest.raises(MalformedAttestationError, match="not an attestation"):
        verify_attestation(sign(typ="JWT"), JWKS)
    with pytest.raises(MalformedAttestationError, match="claims do not parse"):
        verify_attestation(sign({**CLAIMS, "list": "grey"}), JWKS)
    with pytest.raises(MalformedAttestationError, match="claims do not parse"):
        verify_attestation(sign(b"not json"), JWKS)


def test_a_wrong_issuer_and_a_jwks_that_is_not_one_are_errors() -> None:
    with pytest.raises(AttestationError, match="issued by"):
        verify_attestation(sign(), JWKS, issuer="https://elsewhere.example")
    for document in ("not json", "[]", {"keys": "x"}):
        with pytest.raises(MalformedAttestationError, match="JWKS"):
            verify_attestation(sign(), document)  # type: ignore[arg-type]


def test_every_attestation_error_is_a_xinyong_error() -> None:
    for error in (MalformedAttestationError, AlgorithmNotAllowedError, UnknownKeyIdError, AttestationSignatureError):
        assert issubclass(error, AttestationError)
    assert issubclass(AttestationError, XinyongError)
    assert issubclass(MalformedAttestationError, ValueError)
