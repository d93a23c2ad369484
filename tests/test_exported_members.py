"""The public surface of both packages is explicit, sorted and importable."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "xinyong": {
        "AlgorithmNotAllowedError", "ApiError", "Attestation", "AttestationError", "AttestationSignatureError",
        "AuthenticationError", "BadRequestError", "Client", "ClientClosedError", "ConflictError",
        "EVENT_TYPES", "Event", "EventSender", "InvalidIdentifierError", "InvalidKeyError",
        "InvalidNotificationError", "ListChangedNotification", "NotificationReceiver", "NotifiedChange",
        "ReceivedNotification", "UnknownNotificationTypeError", "parse_notification",
        "ListChange", "ListChangesPage", "ListMirror", "MalformedAttestationError", "MalformedHeadersError",
        "MirrorError", "MirrorFreshness",
        "NotFoundError", "NotNdjsonError", "ObjectionCase", "OnboardingDecision", "RepairCase",
        "PayloadTooLargeError", "PermissionDeniedError", "Problem", "ScreeningRequest", "ScreeningResponse",
        "SelectionDecision",
        "RateLimitError", "RequestTimeout", "ServerError", "ServiceUnavailableError", "SignatureMismatchError",
        "SigningKey", "SigningSecret", "StatusReason", "Subject", "SubjectStatus", "SyncClient",
        "TimestampOutOfToleranceError", "TransportError", "UnknownKeyIdError",
        "UnprocessableEntityError", "UnsupportedMediaTypeError", "VerifyingKey", "WebhookAck",
        "WebhookVerificationError", "WebhookVerifier", "XinyongError", "__version__", "parse_event", "ric_pseudonym",
        "verify_attestation",
    },
    "xinyong_gateway": {"GatewaySettings", "__version__", "create_app"},
}  # fmt: skip


def _isort_style(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps: CONSTANTS, then Classes, then everything else, each alphabetical."""
    if name.isupper():
        return (0, name)
    return (1 if name[0].isupper() else 2, name)


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_package_exports_exactly_its_public_names_sorted(package: str) -> None:
    module = importlib.import_module(package)
    assert set(module.__all__) == PUBLIC[package]
    assert list(module.__all__) == sorted(module.__all__, key=_isort_style)
    for name in module.__all__:
        assert hasattr(module, name), name


SUBPACKAGES = [
    "xinyong.cli",
    "xinyong_gateway.access",
    "xinyong_gateway.cli",
    "xinyong_gateway.credit",
    "xinyong_gateway.store",
    "xinyong_gateway.web",
]


@pytest.mark.parametrize("package", SUBPACKAGES)
def test_every_subpackage_exports_a_sorted_all_of_names_it_has(package: str) -> None:
    module = importlib.import_module(package)
    assert list(module.__all__) == sorted(module.__all__, key=_isort_style)
    for name in module.__all__:
        assert getattr(module, name) is not None, name


def test_every_sdk_error_derives_from_the_one_root() -> None:
    import xinyong

    for name in xinyong.__all__:
        value = getattr(xinyong, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, xinyong.XinyongError), name


def test_both_packages_ship_py_typed() -> None:
    from importlib.resources import files

    for package in PUBLIC:
        assert files(package).joinpath("py.typed").is_file(), package
