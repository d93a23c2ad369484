"""What ``serve`` checks before it starts anything, in this order: the port, then the database (it exists, is
migrated, is sealed under this master key) and the policy file. Each failure is one sentence (``ServeError`` or
the store's, key's or policy's error), and nothing has started yet: no projector, no worker, no log line.

``listen(host, port)`` binds and listens on every address of ``host:port`` and hands the sockets to the single
process ``serve`` (``web.run_app(sock=…)``), so the port checked is the port served, with no window in between.
``serve --workers N`` checks the port the same way (``check_port``) and lets each worker bind it with
``SO_REUSEPORT``.
"""

from __future__ import annotations

import errno
import socket

from xinyong_gateway.errors import ServeError
from xinyong_gateway.settings import GatewaySettings

__all__ = ["BACKLOG", "METRICS_OPTIONS", "bind_error", "check_port", "listen", "preflight"]

METRICS_OPTIONS = ("--metrics-host", "--metrics-port")
"""The options of the ``/metrics`` listener, for messages about binding it."""
BACKLOG = 128
"""Pending connections per listening socket (aiohttp's own default)."""


def listen(host: str, port: int, options: tuple[str, str] = ("--host", "--port")) -> list[socket.socket]:
    """Listening sockets on every address of ``host:port`` (``0``: a free port, the same one on each address),
    bound as asyncio binds a server (``SO_REUSEADDR``; IPv6 sockets IPv6 only) but without ``SO_REUSEPORT``: any
    listener already on the port, even another gateway's ``SO_REUSEPORT`` group, makes it a :class:`ServeError`.
    ``options``: the command-line options of the host and the port, for messages (``/metrics`` has its own)."""
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(f"Cannot listen on {host}: {(exc.strerror or str(exc)).lower()} ({options[0]}).") from exc
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(addresses):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:  # every address on the port the first one was given
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            try:
                sock.bind(address)
            except OSError as exc:
                raise ServeError(bind_error(host, port, exc, options)) from exc
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def check_port(host: str, port: int, options: tuple[str, str] = ("--host", "--port")) -> None:
    """Raise :class:`ServeError` unless every address of ``host:port`` can be bound right now."""
    for sock in listen(host, port, options):
        sock.close()


def bind_error(host: str, port: int, exc: OSError, options: tuple[str, str] = ("--host", "--port")) -> str:
    """``exc`` from binding ``host:port`` as one sentence that says what to do (naming ``options``)."""
    host_option, port_option = options
    if exc.errno == errno.EADDRINUSE:
        return f"Port {port} on {host} is in use — is another gateway running? ({port_option})"
    if exc.errno == errno.EACCES:
        return (
            f"Port {port} on {host} needs privileges this user does not have: choose a port above 1023 ({port_option})."
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine ({host_option})."
    return f"Cannot listen on {host} port {port}: {(exc.strerror or str(exc)).lower()}."


async def preflight(settings: GatewaySettings) -> str:
    """The checks every gateway process would make as it starts, made once before any starts: the policy file (when
    projecting), the store (it exists, is reachable and migrated), the master key, and that the database was sealed
    under it. Returns the database for messages (no credentials); raises the error a starting ``serve`` would."""
    from xinyong_gateway.credit.policy import policy_from
    from xinyong_gateway.keyring import unlock
    from xinyong_gateway.store import open_store

    if settings.projector:
        policy_from(settings.policy_file)
    async with open_store(settings.database_url) as store:
        await unlock(store, settings)
        return store.display_url
