"""The SSRF guard of outbound webhooks (``notify.ssrf``): every spelling of a non-public address is refused, at
subscription time and in the resolver the dispatcher connects through, unless the operator allows its network.
Nothing here connects anywhere: the guard is asked, and names are resolved from /etc/hosts only (``localhost``)."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xinyong_gateway.errors import ConfigError, OutboundRefusedError
from xinyong_gateway.notify import GuardedResolver, OutboundGuard, parse_networks
from xinyong_gateway.settings import GatewaySettings

NONE_ALLOWED = OutboundGuard()
LOOPBACK_ONLY = OutboundGuard(parse_networks("127.0.0.1/32"))


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1", "2130706433", "0x7f000001", "0x7f.0.0.1", "0177.0.0.1", "0177.0.0.01", "127.1", "127.0.1",
        "017700000001", "0", "0.0.0.0", "10.1.2.3",  # noqa: S104 -- a host to refuse, nothing binds "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
        "224.0.0.1", "240.0.0.1", "255.255.255.255", "198.18.0.1", "[::1]", "[::]", "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]", "[::127.0.0.1]", "[fe80::1]", "[fc00::1]", "[fd12:3456::1]", "[ff02::1]",
        "[64:ff9b::a00:1]", "[2002:7f00:1::]", "[2001:0::1]", "[::ffff:8.8.8.8]",
    ],
)  # fmt: skip
def test_every_spelling_of_a_non_public_address_is_refused(host: str) -> None:
    with pytest.raises(OutboundRefusedError):
        NONE_ALLOWED.parse_url(f"http://{host}/hook")


@pytest.mark.parametrize("host", ["8.8.8.8", "134744072", "0x08080808", "[2606:4700:4700::1111]"])
def test_a_public_address_is_accepted_in_any_spelling(host: str) -> None:
    NONE_ALLOWED.parse_url(f"https://{host}/hook")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://8.8.8.8/",
        "file:///etc/passwd",
        "gopher://8.8.8.8/",
        "https://user:pw@8.8.8.8/",
        "https:///x",
        "//8.8.8.8/",
    ],
)
def test_only_http_urls_without_credentials_are_accepted(url: str) -> None:
    with pytest.raises(OutboundRefusedError):
        NONE_ALLOWED.parse_url(url)


def test_the_operators_networks_are_the_only_exception() -> None:
    LOOPBACK_ONLY.parse_url("http://127.0.0.1:9/hook")
    LOOPBACK_ONLY.parse_url("http://2130706433:9/hook")  # the same address, spelt as a number
    for url in ("http://127.0.0.2/hook", "http://[::1]/hook", "http://[::ffff:127.0.0.1]/hook"):
        with pytest.raises(OutboundRefusedError):
            LOOPBACK_ONLY.parse_url(url)


async def test_a_name_is_checked_by_what_it_resolves_to_at_subscription_time() -> None:
    with pytest.raises(OutboundRefusedError):
        await NONE_ALLOWED.check_url("http://localhost/hook")
    await LOOPBACK_ONLY.check_url("http://127.0.0.1/hook")


async def test_the_resolver_the_dispatcher_connects_through_refuses_a_name_of_a_non_public_address() -> None:
    """At connect time (DNS rebinding): ``localhost`` resolves to loopback now, whatever it resolved to before."""
    resolver = GuardedResolver(NONE_ALLOWED)
    try:
        with pytest.raises(OutboundRefusedError):
            await resolver.resolve("localhost", 80, socket.AF_INET)
        with pytest.raises(OutboundRefusedError):
            await resolver.resolve("0x7f000001", 80, socket.AF_INET)
    finally:
        await resolver.close()
    allowed = GuardedResolver(LOOPBACK_ONLY)
    try:
        found = await allowed.resolve("127.0.0.1", 80, socket.AF_INET)
        assert [result["host"] for result in found] == ["127.0.0.1"]
    finally:
        await allowed.close()


def test_allowed_networks_must_be_cidrs() -> None:
    with pytest.raises(ConfigError, match="not a network"):
        parse_networks("127.0.0.1/8")  # host bits set
    with pytest.raises(ValueError, match="outbound_allowed_networks"):
        GatewaySettings(outbound_allowed_networks="10.0.0.0/33")
    assert parse_networks("") == ()


@given(st.integers(min_value=0, max_value=2**32 - 1))
@settings(max_examples=300)
def test_the_numeric_forms_of_an_address_get_the_verdict_of_its_dotted_form(value: int) -> None:
    """Decimal, hex and octal-dotted spellings of an IPv4 address are judged as the address itself."""
    dotted = str(ipaddress.IPv4Address(value))
    octal = ".".join(f"0{int(part):o}" for part in dotted.split("."))
    verdicts = set()
    for host in (dotted, str(value), hex(value), octal):
        try:
            NONE_ALLOWED.parse_url(f"http://{host}/")
            verdicts.add(True)
        except OutboundRefusedError:
            verdicts.add(False)
    assert len(verdicts) == 1
    assert verdicts.pop() == NONE_ALLOWED.allows(ipaddress.IPv4Address(value))
