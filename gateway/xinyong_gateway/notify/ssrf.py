"""The SSRF guard of outbound webhooks: a subscription may only make the gateway talk to public addresses.

A URL is accepted when its scheme is ``https`` or ``http``, it carries no credentials, and every address its host
is or resolves to is public, or inside a network the operator allows (``XINYONG_OUTBOUND_ALLOWED_NETWORKS``,
comma-separated CIDRs, empty by default). Refused: loopback, private (RFC 1918, unique-local), link-local,
shared/CGNAT (100.64/10), multicast, unspecified, reserved and documentation ranges, and the IPv6 forms that carry an
IPv4 address (IPv4-mapped ``::ffff:0:0/96``, IPv4-compatible ``::/96``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``,
Teredo ``2001::/32``).

**Every spelling.** A host of digits, dots and ``0x`` is an IPv4 address in one of the forms ``inet_aton`` accepts
(and so does the resolver that would connect to it): decimal ``2130706433``, hex ``0x7f000001``, octal ``0177.0.0.1``,
short ``127.1``. Such a host is read as the resolver reads it and checked as that address.

**Twice.** At subscription time (:meth:`OutboundGuard.check_url`, which resolves the name) and again at every
connection: the dispatcher's HTTP client resolves names only through :class:`GuardedResolver`, which refuses a name
whose addresses are not all allowed, so the address actually connected to is one just checked (a DNS answer that
changed to 127.0.0.1 after the subscription — DNS rebinding — is refused then). Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import urllib.parse
from collections.abc import Iterable, Sequence

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from xinyong_gateway.errors import ConfigError, OutboundRefusedError

__all__ = ["GuardedResolver", "OutboundGuard", "parse_networks"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_REFUSED_V6 = tuple(
    ipaddress.IPv6Network(cidr)
    for cidr in ("::ffff:0:0/96", "::/96", "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32", "fec0::/10")
)
_REFUSED_V4 = tuple(
    ipaddress.IPv4Network(cidr)
    for cidr in ("0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15", "240.0.0.0/4", "224.0.0.0/4")
)
_NUMERIC_HOST = re.compile(r"[0-9a-fA-FxX.]+")
_DIGITS_OR_HEX = re.compile(r"(0[xX][0-9a-fA-F]*|[0-9]+)(\.(0[xX][0-9a-fA-F]*|[0-9]+))*\.?")


def parse_networks(text: str) -> tuple[Network, ...]:
    """``XINYONG_OUTBOUND_ALLOWED_NETWORKS``: comma-separated CIDRs (``127.0.0.1/32,10.1.0.0/16``); empty for none."""
    networks = []
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(part.strip(), strict=True))
        except ValueError as exc:
            raise ConfigError(
                f"XINYONG_OUTBOUND_ALLOWED_NETWORKS: {part.strip()!r} is not a network in CIDR form ({exc})."
            ) from None
    return tuple(networks)


def _literal_address(host: str) -> IPAddress | None:
    """The address a host names literally, in any spelling a resolver accepts; None for a name."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(bare.split("%", 1)[0])
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(bare) and _DIGITS_OR_HEX.fullmatch(bare):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(bare.rstrip(".")))
        except OSError:
            raise OutboundRefusedError("The URL's host is a malformed numeric address.") from None
    return None


class OutboundGuard:
    """Decides which addresses outbound webhooks may reach (``allowed``: the operator's exceptions)."""

    def __init__(self, allowed: Sequence[Network] = ()) -> None:
        self._allowed = tuple(allowed)

    def allows(self, address: IPAddress) -> bool:
        """Whether the gateway may connect to ``address``."""
        if any(address.version == network.version and address in network for network in self._allowed):
            return True
        if isinstance(address, ipaddress.IPv6Address):
            if any(address in network for network in _REFUSED_V6):
                return False
        elif any(address in network for network in _REFUSED_V4):
            return False
        return address.is_global and not (
            address.is_multicast or address.is_private or address.is_loopback or address.is_link_local
            or address.is_reserved or address.is_unspecified
        )  # fmt: skip

    def check_addresses(self, addresses: Iterable[IPAddress]) -> None:
        found = list(addresses)
        if not found:
            raise OutboundRefusedError("The URL's host does not resolve to any address.")
        if not all(self.allows(address) for address in found):
            raise OutboundRefusedError(
                "The URL's host is or resolves to a loopback, private, link-local or other non-public address;"
                " notifications go only to public addresses."
            )

    def parse_url(self, url: str) -> tuple[str, str, IPAddress | None]:
        """``(scheme, host, literal address or None)`` of a URL the guard may accept, checking all but the DNS."""
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError:
            raise OutboundRefusedError("The URL cannot be parsed.") from None
        if parts.scheme not in ("https", "http"):
            raise OutboundRefusedError("The URL must start with https:// (or http://).")
        if parts.username is not None or parts.password is not None:
            raise OutboundRefusedError("The URL must not carry credentials.")
        if port == 0:
            raise OutboundRefusedError("The URL's port must be 1 to 65535.")
        host = parts.hostname or ""
        if not host or any(ord(char) < 0x21 or char in "\\" for char in host):
            raise OutboundRefusedError("The URL has no usable host.")
        if parts.fragment:
            raise OutboundRefusedError("The URL must not have a fragment.")
        address = _literal_address(host)
        if address is not None:
            self.check_addresses([address])
        return parts.scheme, host, address

    async def check_url(self, url: str) -> None:
        """Raise :class:`OutboundRefusedError` unless ``url`` may be subscribed: scheme, no credentials, and every
        address of its host allowed (the name is resolved now)."""
        _, host, address = self.parse_url(url)
        if address is not None:
            return
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise OutboundRefusedError("The URL's host does not resolve.") from None
        self.check_addresses(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos)


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver behind the guard: a name resolves only when every address it has is allowed, so the
    address a connection is made to has been checked at that moment. (aiohttp does not resolve a literal address;
    the dispatcher checks those with :meth:`OutboundGuard.parse_url` before each request.)"""

    def __init__(self, guard: OutboundGuard) -> None:
        self._guard = guard
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        literal = _literal_address(host)
        if literal is not None:
            self._guard.check_addresses([literal])
        results = await self._inner.resolve(host, port, family)
        self._guard.check_addresses(ipaddress.ip_address(str(result["host"]).split("%", 1)[0]) for result in results)
        return results

    async def close(self) -> None:
        await self._inner.close()

    def __repr__(self) -> str:
        return "GuardedResolver()"
