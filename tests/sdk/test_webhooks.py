"""Signing and verifying inbound events: shared vectors, interop, failure modes, properties."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import standardwebhooks
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from xinyong.errors import (
    InvalidKeyError,
    MalformedHeadersError,
    SignatureMismatchError,
    TimestampOutOfToleranceError,
)
from xinyong.webhooks import (
    DEFAULT_TOLERANCE,
    SigningKey,
    SigningSecret,
    VerifyingKey,
    WebhookHeaders,
    WebhookVerifier,
    parse_headers,
    signature_headers,
)

# Shared vectors (docs/wire-contract.md, "Signatures"; from the reference libraries' own tests).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_SEED = "whsk_VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk="
VECTOR_PUBLIC_KEY = "whpk_ZlN4eg7dSSqi0moX9hQUk3orrOouK3QVQSlJa248c/g="
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_V1 = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
VECTOR_V1A = "v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag=="

NOW = 1_700_000_000
BODY = b'{"type": "delivery.recorded", "data": {"waybill_no": "SF1234567890"}}'
MSG_ID = "msg_2bXc9"

# Generated once per session: Ed25519 key generation per hypothesis example would only add noise.
SECRET = SigningSecret.generate()
OTHER_SECRET = SigningSecret.generate()
SIGNING_KEY = SigningKey.generate()
OTHER_SIGNING_KEY = SigningKey.generate()


def fixed_clock(now: float) -> Callable[[], float]:
    return lambda: now


def headers_for(msg_id: str, timestamp: int, signature: str) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def vector_headers(signature: str) -> dict[str, str]:
    return headers_for(VECTOR_ID, VECTOR_TIMESTAMP, signature)


def verifier(*keys: SigningSecret | VerifyingKey | str, tolerance: int = DEFAULT_TOLERANCE) -> WebhookVerifier:
    return WebhookVerifier(keys, tolerance=tolerance, clock=fixed_clock(NOW))


# --- shared vectors ---------------------------------------------------------------------------------


def test_v1_vector_signs_to_the_reference_signature() -> None:
    secret = SigningSecret.parse(VECTOR_SECRET)
    assert secret.sign(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_V1


def test_v1_vector_verifies_at_the_vector_time() -> None:
    verifier = WebhookVerifier([VECTOR_SECRET], clock=fixed_clock(VECTOR_TIMESTAMP))
    parsed = verifier.verify(vector_headers(VECTOR_V1), VECTOR_BODY)
    assert parsed == WebhookHeaders(id=VECTOR_ID, timestamp=VECTOR_TIMESTAMP, signature=VECTOR_V1)


def test_v1a_vector_signs_to_the_reference_signature() -> None:
    key = SigningKey.parse(VECTOR_SEED)
    assert key.sign(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_V1A


def test_v1a_vector_seed_derives_the_reference_public_key() -> None:
    assert str(SigningKey.parse(VECTOR_SEED).public_key) == VECTOR_PUBLIC_KEY
    assert SigningKey.parse(VECTOR_SEED).public_key == VerifyingKey.parse(VECTOR_PUBLIC_KEY)


def test_v1a_vector_verifies_at_the_vector_time() -> None:
    verifier = WebhookVerifier([VECTOR_PUBLIC_KEY], clock=fixed_clock(VECTOR_TIMESTAMP))
    assert verifier.verify(vector_headers(VECTOR_V1A), VECTOR_BODY).id == VECTOR_ID


def test_signature_headers_carry_id_timestamp_and_signature() -> None:
    secret = SigningSecret.parse(VECTOR_SECRET)
    headers = signature_headers(secret, VECTOR_ID, VECTOR_BODY, timestamp=VECTOR_TIMESTAMP)
    assert headers == vector_headers(VECTOR_V1)


def test_signature_headers_take_the_timestamp_from_the_clock_when_none_is_given() -> None:
    key = SigningKey.parse(VECTOR_SEED)
    headers = signature_headers(key, VECTOR_ID, VECTOR_BODY, clock=fixed_clock(VECTOR_TIMESTAMP + 0.9))
    assert headers == vector_headers(VECTOR_V1A)


# --- interop with the standardwebhooks reference library ---------------------------------------------


def test_reference_library_signature_verifies_here() -> None:
    now = int(time.time())
    signature = standardwebhooks.Webhook(VECTOR_SECRET).sign(MSG_ID, datetime.fromtimestamp(now, tz=UTC), BODY.decode())
    verifier = WebhookVerifier([VECTOR_SECRET], clock=fixed_clock(now))
    assert verifier.verify(headers_for(MSG_ID, now, signature), BODY).signature == signature


def test_our_v1_signature_verifies_with_the_reference_library() -> None:
    headers = signature_headers(SigningSecret.parse(VECTOR_SECRET), MSG_ID, BODY)
    assert standardwebhooks.Webhook(VECTOR_SECRET).verify(BODY, headers) == json.loads(BODY)


def test_reference_library_rejects_our_signature_under_another_secret() -> None:
    headers = signature_headers(SECRET, MSG_ID, BODY)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(VECTOR_SECRET).verify(BODY, headers)


# --- signature header entries -----------------------------------------------------------------------


def test_one_wrong_and_one_right_signature_in_one_header_verifies() -> None:
    wrong = OTHER_SECRET.sign(MSG_ID, NOW, BODY)
    right = SECRET.sign(MSG_ID, NOW, BODY)
    verifier(SECRET).verify(headers_for(MSG_ID, NOW, f"{wrong} {right}"), BODY)


def test_only_an_unknown_version_is_a_signature_mismatch() -> None:
    encoded = SECRET.sign(MSG_ID, NOW, BODY).partition(",")[2]
    with pytest.raises(SignatureMismatchError, match="no valid signature"):
        verifier(SECRET).verify(headers_for(MSG_ID, NOW, f"v2,{encoded}"), BODY)


def test_unknown_version_beside_a_valid_signature_verifies() -> None:
    signature = f"v9,c29tZXRoaW5nIG5ldw== {SECRET.sign(MSG_ID, NOW, BODY)} v1b,xyz"
    verifier(SECRET).verify(headers_for(MSG_ID, NOW, signature), BODY)


MALFORMED_ENTRIES = [
    pytest.param("v1", id="no-comma"),
    pytest.param("v1,", id="empty-base64"),
    pytest.param("v1,not base64!", id="bad-base64"),
    pytest.param("v1,@@@@", id="bad-base64-chars"),
    pytest.param("v1,AAAA", id="wrong-length-v1"),
    pytest.param("v1a,AAAA", id="wrong-length-v1a"),
    pytest.param("v1,ÄÖÜ=", id="non-ascii"),
    pytest.param(",,,", id="only-commas"),
]


@pytest.mark.parametrize("entry", MALFORMED_ENTRIES)
def test_malformed_entries_are_skipped_beside_a_valid_signature(entry: str) -> None:
    signature = f"{entry} {SECRET.sign(MSG_ID, NOW, BODY)} {SIGNING_KEY.sign(MSG_ID, NOW, BODY)}"
    verifier(SECRET).verify(headers_for(MSG_ID, NOW, signature), BODY)
    verifier(SIGNING_KEY.public_key).verify(headers_for(MSG_ID, NOW, signature), BODY)


@pytest.mark.parametrize("entry", MALFORMED_ENTRIES)
def test_malformed_entries_alone_are_a_signature_mismatch(entry: str) -> None:
    with pytest.raises(SignatureMismatchError):
        verifier(SECRET, SIGNING_KEY.public_key).verify(headers_for(MSG_ID, NOW, entry), BODY)


def test_extra_spaces_between_entries_are_tolerated() -> None:
    signature = f"  v2,AAAA   {SECRET.sign(MSG_ID, NOW, BODY)}  "
    verifier(SECRET).verify(headers_for(MSG_ID, NOW, signature), BODY)


def test_v1a_signature_is_a_mismatch_for_a_verifier_with_only_a_symmetric_secret() -> None:
    with pytest.raises(SignatureMismatchError):
        verifier(SECRET).verify(headers_for(MSG_ID, NOW, SIGNING_KEY.sign(MSG_ID, NOW, BODY)), BODY)


def test_v1_signature_is_a_mismatch_for_a_verifier_with_only_a_public_key() -> None:
    with pytest.raises(SignatureMismatchError):
        verifier(SIGNING_KEY.public_key).verify(headers_for(MSG_ID, NOW, SECRET.sign(MSG_ID, NOW, BODY)), BODY)


def test_v1a_signature_under_another_key_is_a_mismatch() -> None:
    signature = OTHER_SIGNING_KEY.sign(MSG_ID, NOW, BODY)
    with pytest.raises(SignatureMismatchError):
        verifier(SIGNING_KEY.public_key).verify(headers_for(MSG_ID, NOW, signature), BODY)


def test_v1_signature_relabelled_as_v1a_is_a_mismatch() -> None:
    encoded = SECRET.sign(MSG_ID, NOW, BODY).partition(",")[2]
    with pytest.raises(SignatureMismatchError):
        verifier(SECRET, SIGNING_KEY.public_key).verify(headers_for(MSG_ID, NOW, f"v1a,{encoded}"), BODY)


def test_verifier_with_old_and_new_secret_accepts_both_during_rotation() -> None:
    rotating = verifier(OTHER_SECRET, SECRET)
    rotating.verify(headers_for(MSG_ID, NOW, OTHER_SECRET.sign(MSG_ID, NOW, BODY)), BODY)
    rotating.verify(headers_for(MSG_ID, NOW, SECRET.sign(MSG_ID, NOW, BODY)), BODY)


def test_verifier_with_old_and_new_public_key_accepts_both_during_rotation() -> None:
    rotating = verifier(OTHER_SIGNING_KEY.public_key, SIGNING_KEY.public_key)
    rotating.verify(headers_for(MSG_ID, NOW, OTHER_SIGNING_KEY.sign(MSG_ID, NOW, BODY)), BODY)
    rotating.verify(headers_for(MSG_ID, NOW, SIGNING_KEY.sign(MSG_ID, NOW, BODY)), BODY)


def test_verifier_with_mixed_keys_accepts_either_scheme() -> None:
    mixed = verifier(SECRET, SIGNING_KEY.public_key)
    mixed.verify(headers_for(MSG_ID, NOW, SECRET.sign(MSG_ID, NOW, BODY)), BODY)
    mixed.verify(headers_for(MSG_ID, NOW, SIGNING_KEY.sign(MSG_ID, NOW, BODY)), BODY)


def test_verifier_parses_key_strings_by_prefix() -> None:
    from_strings = verifier(f"  {SECRET}\n", str(SIGNING_KEY.public_key))
    from_strings.verify(headers_for(MSG_ID, NOW, SECRET.sign(MSG_ID, NOW, BODY)), BODY)
    from_strings.verify(headers_for(MSG_ID, NOW, SIGNING_KEY.sign(MSG_ID, NOW, BODY)), BODY)


def test_verifier_refuses_a_signing_key_string_without_echoing_it() -> None:
    with pytest.raises(InvalidKeyError, match="public key") as excinfo:
        verifier(str(SIGNING_KEY))
    assert str(SIGNING_KEY) not in str(excinfo.value)


def test_verifier_refuses_a_key_string_with_an_unknown_prefix() -> None:
    with pytest.raises(InvalidKeyError, match="'whsec_' or 'whpk_'"):
        verifier("sk_live_abcdef")


def test_verifier_without_keys_verifies_nothing() -> None:
    with pytest.raises(SignatureMismatchError):
        verifier().verify(headers_for(MSG_ID, NOW, SECRET.sign(MSG_ID, NOW, BODY)), BODY)


def test_verifier_refuses_a_negative_tolerance() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        verifier(SECRET, tolerance=-1)


def test_only_the_first_ten_signatures_of_a_known_version_are_tried() -> None:
    decoys = " ".join([OTHER_SIGNING_KEY.sign(MSG_ID, NOW, BODY)] * 10)
    right = SIGNING_KEY.sign(MSG_ID, NOW, BODY)
    public = verifier(SIGNING_KEY.public_key)
    with pytest.raises(SignatureMismatchError):
        public.verify(headers_for(MSG_ID, NOW, f"{decoys} {right}"), BODY)
    nine = " ".join([OTHER_SIGNING_KEY.sign(MSG_ID, NOW, BODY)] * 9)
    public.verify(headers_for(MSG_ID, NOW, f"v2,AAAA {nine} {right}"), BODY)


# --- tampering ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [SECRET, SIGNING_KEY], ids=["v1", "v1a"])
@pytest.mark.parametrize(
    ("msg_id", "timestamp", "body"),
    [
        pytest.param(MSG_ID, NOW, BODY.replace(b"SF1234567890", b"SF1234567891"), id="body"),
        pytest.param(MSG_ID, NOW, BODY + b" ", id="body-appended"),
        pytest.param(MSG_ID, NOW, b"", id="body-emptied"),
        pytest.param("msg_2bXc8", NOW, BODY, id="id"),
        pytest.param(MSG_ID, NOW + 1, BODY, id="timestamp"),
    ],
)
def test_tampered_message_is_a_signature_mismatch(
    key: SigningSecret | SigningKey, msg_id: str, timestamp: int, body: bytes
) -> None:
    signature = key.sign(MSG_ID, NOW, BODY)
    keys = SECRET if isinstance(key, SigningSecret) else key.public_key
    with pytest.raises(SignatureMismatchError):
        verifier(keys).verify(headers_for(msg_id, timestamp, signature), body)


def test_signature_is_checked_before_the_timestamp() -> None:
    stale = NOW - 10 * DEFAULT_TOLERANCE
    signature = OTHER_SECRET.sign(MSG_ID, stale, BODY)
    with pytest.raises(SignatureMismatchError):
        verifier(SECRET).verify(headers_for(MSG_ID, stale, signature), BODY)


# --- timestamp tolerance -----------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [-DEFAULT_TOLERANCE, -1, 0, 1, DEFAULT_TOLERANCE])
def test_timestamp_within_tolerance_verifies(offset: int) -> None:
    timestamp = NOW + offset
    verifier(SECRET).verify(headers_for(MSG_ID, timestamp, SECRET.sign(MSG_ID, timestamp, BODY)), BODY)


@pytest.mark.parametrize(
    ("offset", "direction"),
    [(-DEFAULT_TOLERANCE - 1, "behind"), (DEFAULT_TOLERANCE + 1, "ahead of"), (-NOW, "behind")],
)
def test_timestamp_outside_tolerance_is_rejected_with_the_skew(offset: int, direction: str) -> None:
    timestamp = NOW + offset
    with pytest.raises(TimestampOutOfToleranceError, match=f"{abs(offset)} s {direction}") as excinfo:
        verifier(SECRET).verify(headers_for(MSG_ID, timestamp, SECRET.sign(MSG_ID, timestamp, BODY)), BODY)
    assert (excinfo.value.timestamp, excinfo.value.now, excinfo.value.tolerance) == (
        timestamp,
        NOW,
        DEFAULT_TOLERANCE,
    )


def test_tolerance_is_configurable() -> None:
    timestamp = NOW - 30
    headers = headers_for(MSG_ID, timestamp, SECRET.sign(MSG_ID, timestamp, BODY))
    verifier(SECRET, tolerance=30).verify(headers, BODY)
    with pytest.raises(TimestampOutOfToleranceError, match="±29 s"):
        verifier(SECRET, tolerance=29).verify(headers, BODY)


def test_clock_is_read_at_verification_time() -> None:
    now = [float(NOW)]
    live = WebhookVerifier([SECRET], clock=lambda: now[0])
    headers = headers_for(MSG_ID, NOW, SECRET.sign(MSG_ID, NOW, BODY))
    live.verify(headers, BODY)
    now[0] += DEFAULT_TOLERANCE + 1
    with pytest.raises(TimestampOutOfToleranceError):
        live.verify(headers, BODY)


def test_verify_parts_checks_already_parsed_headers() -> None:
    signature = SIGNING_KEY.sign(MSG_ID, NOW, BODY)
    public = verifier(SIGNING_KEY.public_key)
    public.verify_parts(MSG_ID, NOW, signature, BODY)
    with pytest.raises(SignatureMismatchError):
        public.verify_parts(MSG_ID, NOW, signature, BODY + b"x")
    with pytest.raises(TimestampOutOfToleranceError):
        WebhookVerifier([SIGNING_KEY.public_key], clock=fixed_clock(NOW + 301)).verify_parts(
            MSG_ID, NOW, signature, BODY
        )


# --- headers -------------------------------------------------------------------------------------------

GOOD_HEADERS = headers_for(MSG_ID, NOW, VECTOR_V1)


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_malformed_and_named(name: str) -> None:
    headers = {key: value for key, value in GOOD_HEADERS.items() if key != name}
    with pytest.raises(MalformedHeadersError, match=f"^missing {name} header$"):
        verifier(SECRET).verify(headers, BODY)


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_empty_header_is_malformed_and_named(name: str) -> None:
    with pytest.raises(MalformedHeadersError, match=f"^empty {name} header$"):
        parse_headers({**GOOD_HEADERS, name: ""})


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("m" * 257, id="too-long"),
        pytest.param("msg 1", id="space"),
        pytest.param("msg\t1", id="tab"),
        pytest.param("msg\n1", id="newline"),
        pytest.param("msg\x7f", id="delete"),
        pytest.param("消息1", id="non-ascii"),
    ],
)
def test_malformed_webhook_id_is_rejected_without_echoing_it(value: str) -> None:
    with pytest.raises(MalformedHeadersError, match="webhook-id") as excinfo:
        parse_headers({**GOOD_HEADERS, "webhook-id": value})
    assert value not in str(excinfo.value)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("-1614265330", id="minus"),
        pytest.param("+1614265330", id="plus"),
        pytest.param("1614265330.5", id="fraction"),
        pytest.param("1e9", id="exponent"),
        pytest.param(" 1614265330", id="leading-space"),
        pytest.param("1614_265330", id="underscore"),
        pytest.param("1234567890123", id="thirteen-digits"),
        pytest.param("01614265330", id="leading-zero"),
        pytest.param("١٦١٤٢٦٥٣٣٠", id="arabic-indic-digits"),
        pytest.param("2021-02-25T15:02:10Z", id="rfc3339"),
    ],
)
def test_malformed_webhook_timestamp_is_rejected(value: str) -> None:
    with pytest.raises(MalformedHeadersError, match="webhook-timestamp"):
        parse_headers({**GOOD_HEADERS, "webhook-timestamp": value})


@pytest.mark.parametrize("value", ["0", "999999999999"])
def test_webhook_timestamp_accepts_zero_and_twelve_digits(value: str) -> None:
    assert parse_headers({**GOOD_HEADERS, "webhook-timestamp": value}).timestamp == int(value)


def test_webhook_id_of_256_printable_characters_is_accepted() -> None:
    msg_id = ("".join(chr(c) for c in range(0x21, 0x7F)) * 3)[:256]
    assert parse_headers({**GOOD_HEADERS, "webhook-id": msg_id}).id == msg_id


def test_webhook_signature_over_8_kib_is_rejected() -> None:
    assert parse_headers({**GOOD_HEADERS, "webhook-signature": "v" * 8192}).signature == "v" * 8192
    with pytest.raises(MalformedHeadersError, match="webhook-signature header is longer than 8192"):
        parse_headers({**GOOD_HEADERS, "webhook-signature": "v" * 8193})


@pytest.mark.parametrize("transform", [str.upper, str.title, lambda name: name.replace("id", "ID")])
def test_header_lookup_in_a_plain_dict_is_case_insensitive(transform: Callable[[str], str]) -> None:
    headers = {transform(key): value for key, value in GOOD_HEADERS.items()}
    assert parse_headers(headers) == WebhookHeaders(id=MSG_ID, timestamp=NOW, signature=VECTOR_V1)


def test_header_lookup_works_with_aiohttp_ci_multidict_proxy() -> None:
    raw = CIMultiDict({"Webhook-Id": MSG_ID, "WEBHOOK-TIMESTAMP": str(NOW), "webhook-signature": "x"})
    headers = CIMultiDictProxy(raw)
    assert parse_headers(headers) == WebhookHeaders(id=MSG_ID, timestamp=NOW, signature="x")


def test_verify_accepts_headers_signed_by_signature_headers() -> None:
    headers = signature_headers(SIGNING_KEY, MSG_ID, BODY, clock=fixed_clock(NOW))
    assert verifier(SIGNING_KEY.public_key).verify(headers, BODY) == WebhookHeaders(
        id=MSG_ID, timestamp=NOW, signature=headers["webhook-signature"]
    )


# --- keys ---------------------------------------------------------------------------------------------


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        pytest.param(SigningSecret.parse, b64(b"s" * 32), "must start with 'whsec_'", id="secret-no-prefix"),
        pytest.param(SigningSecret.parse, "WHSEC_" + b64(b"s" * 32), "'whsec_'", id="secret-upper-prefix"),
        pytest.param(SigningSecret.parse, "whsk_" + b64(b"s" * 32), "Ed25519 signing key", id="secret-given-whsk"),
        pytest.param(SigningSecret.parse, "whsec_" + "s3cr3t!!" * 4, "base64", id="secret-bad-base64"),
        pytest.param(SigningSecret.parse, "whsec_" + b64(b"s" * 32)[:-2] + "=A", "base64", id="secret-bad-padding"),
        pytest.param(SigningSecret.parse, "whsec_" + b64(b"s" * 23), "24 to 64 bytes", id="secret-23-bytes"),
        pytest.param(SigningSecret.parse, "whsec_" + b64(b"s" * 65), "24 to 64 bytes", id="secret-65-bytes"),
        pytest.param(SigningSecret.parse, "whsec_", "24 to 64 bytes", id="secret-empty"),
        pytest.param(SigningKey.parse, "whsec_" + b64(b"k" * 32), "symmetric", id="key-given-whsec"),
        pytest.param(SigningKey.parse, "whpk_" + b64(b"k" * 32), "public key", id="key-given-whpk"),
        pytest.param(SigningKey.parse, "whsk_" + "k3y!" * 11, "base64", id="key-bad-base64"),
        pytest.param(SigningKey.parse, "whsk_" + b64(b"k" * 31), "32-byte seed", id="key-31-bytes"),
        pytest.param(SigningKey.parse, "whsk_" + b64(b"k" * 33), "32-byte seed", id="key-33-bytes"),
        pytest.param(SigningKey.parse, "whsk_" + b64(b"k" * 64), "32-byte seed", id="key-64-bytes"),
        pytest.param(VerifyingKey.parse, "whsk_" + b64(b"p" * 32), "signing key", id="public-given-whsk"),
        pytest.param(VerifyingKey.parse, "whpk_" + "p@bl!c" * 7, "base64", id="public-bad-base64"),
        pytest.param(VerifyingKey.parse, "whpk_" + b64(b"p" * 31), "32 bytes", id="public-31-bytes"),
        pytest.param(VerifyingKey.parse, "whpk_" + b64(b"p" * 33), "32 bytes", id="public-33-bytes"),
    ],
)
def test_invalid_key_text_raises_without_echoing_the_input(
    parse: Callable[[str], object], text: str, message: str
) -> None:
    with pytest.raises(InvalidKeyError, match=message) as excinfo:
        parse(text)
    encoded = text.partition("_")[2] or text
    assert text not in str(excinfo.value)
    assert encoded not in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)


@pytest.mark.parametrize("size", [24, 64])
def test_secret_lengths_at_the_bounds_are_accepted(size: int) -> None:
    assert SigningSecret.parse("whsec_" + b64(bytes(range(size)))).key == bytes(range(size))


def test_secret_parsing_strips_surrounding_whitespace() -> None:
    assert SigningSecret.parse(f"\n  {VECTOR_SECRET}\t\n") == SigningSecret.parse(VECTOR_SECRET)


def test_secret_parsing_accepts_unpadded_base64() -> None:
    raw = bytes(range(25))
    assert SigningSecret.parse("whsec_" + b64(raw).rstrip("=")).key == raw


def test_keys_round_trip_through_their_text_form() -> None:
    assert SigningSecret.parse(str(SECRET)) == SECRET
    assert SigningKey.parse(str(SIGNING_KEY)) == SIGNING_KEY
    assert VerifyingKey.parse(str(SIGNING_KEY.public_key)) == SIGNING_KEY.public_key
    assert str(SECRET).startswith("whsec_")
    assert str(SIGNING_KEY).startswith("whsk_")
    assert str(SIGNING_KEY.public_key).startswith("whpk_")


def test_generated_keys_are_random_and_of_the_right_size() -> None:
    assert len(SigningSecret.generate().key) == 32
    assert SigningSecret.generate() != SigningSecret.generate()
    assert SigningKey.generate().public_key != SigningKey.generate().public_key
    assert len(SigningKey.generate().public_key.raw) == 32


def test_repr_of_secret_and_signing_key_never_reveals_the_secret() -> None:
    secret_text = str(SECRET).removeprefix("whsec_")
    seed_text = str(SIGNING_KEY).removeprefix("whsk_")
    assert repr(SECRET) == "SigningSecret(whsec_…)"
    assert secret_text not in repr(SECRET)
    assert seed_text not in repr(SIGNING_KEY)
    assert secret_text not in repr([SECRET]) and seed_text not in f"{[SIGNING_KEY]!r}"
    assert str(SIGNING_KEY.public_key) in repr(SIGNING_KEY)


def test_verifying_keys_compare_and_hash_by_their_bytes() -> None:
    again = VerifyingKey.parse(str(SIGNING_KEY.public_key))
    assert again == SIGNING_KEY.public_key
    assert hash(again) == hash(SIGNING_KEY.public_key)
    assert len({again, SIGNING_KEY.public_key, OTHER_SIGNING_KEY.public_key}) == 2
    assert again.raw == SIGNING_KEY.public_key.raw


# --- properties -----------------------------------------------------------------------------------------

webhook_ids = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=256)
timestamps = st.integers(min_value=0, max_value=10**12 - 1)
bodies = st.binary(max_size=2048)
signers = st.sampled_from([SECRET, SIGNING_KEY])


def verifier_for(signer: SigningSecret | SigningKey, now: int) -> WebhookVerifier:
    key = signer if isinstance(signer, SigningSecret) else signer.public_key
    return WebhookVerifier([key], clock=fixed_clock(now))


@given(signer=signers, msg_id=webhook_ids, timestamp=timestamps, body=bodies)
def test_sign_then_verify_round_trips_for_both_schemes(
    signer: SigningSecret | SigningKey, msg_id: str, timestamp: int, body: bytes
) -> None:
    headers = signature_headers(signer, msg_id, body, timestamp=timestamp)
    parsed = verifier_for(signer, timestamp).verify(headers, body)
    assert (parsed.id, parsed.timestamp) == (msg_id, timestamp)


@given(signer=signers, body=bodies.filter(bool), data=st.data())
def test_any_single_byte_change_of_the_body_fails_verification(
    signer: SigningSecret | SigningKey, body: bytes, data: st.DataObject
) -> None:
    headers = signature_headers(signer, MSG_ID, body, timestamp=NOW)
    index = data.draw(st.integers(min_value=0, max_value=len(body) - 1), label="index")
    flip = data.draw(st.integers(min_value=1, max_value=255), label="xor")
    tampered = bytearray(body)
    tampered[index] ^= flip
    with pytest.raises(SignatureMismatchError):
        verifier_for(signer, NOW).verify(headers, bytes(tampered))
