"""Lifecycle shared by the SDK's objects.

- :class:`GatewaySession`, what :class:`~xinyong.Client` and :class:`~xinyong.EventSender` share: one
  ``aiohttp.ClientSession``, created on first use unless the caller passed one (a caller's session is never closed
  here), the per-request timeout, the retry loop (:mod:`xinyong.retries`) and its log lines, and the closed state:
  once closed, an object is not reusable. aiohttp's exceptions end here: a failure to reach the gateway becomes a
  :class:`~xinyong.errors.TransportError` whose message is one sentence in the caller's terms ("Cannot reach
  http://127.0.0.1:8080 (connection refused) after 5 tries — is the gateway running?"), never aiohttp's text.
- :class:`ClosesOnExit`: ``with`` support for the objects that close synchronously (:class:`~xinyong.SyncClient`,
  :class:`~xinyong.ListMirror`).
"""

from __future__ import annotations

import errno
import socket
import ssl
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

import aiohttp
from multidict import CIMultiDictProxy
from tenacity import RetryCallState

from xinyong._logs import get_logger
from xinyong.errors import ApiError, ClientClosedError, RequestTimeout, TransportError
from xinyong.retries import RetryWait, error_for_answer, retrying, unexpected_answer

__all__ = ["ClosesOnExit", "GatewaySession", "transport_failure"]

T = TypeVar("T")


def _reason(exc: BaseException) -> tuple[str, str]:
    """What went wrong, in a few words, and the question to ask the user (aiohttp's message is neither)."""
    running = "is the gateway running?"
    if isinstance(exc, TimeoutError):
        return "no answer in time", "is the gateway running, and not overloaded?"
    if isinstance(exc, aiohttp.InvalidURL):
        return "not a valid URL", "is the URL right?"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "TLS handshake failed", "does the gateway serve https:// at that address?"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the connection was closed without an answer", running
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the answer was cut off", running
    if isinstance(exc, aiohttp.ClientResponseError):  # raised by the client itself: the bytes were not HTTP
        return "the answer is not HTTP", "is that the gateway's address?"
    cause = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
    if isinstance(cause, socket.gaierror):
        return "host name not found", "is the URL right?"
    if isinstance(cause, ssl.SSLError):
        return "TLS handshake failed", "does the gateway serve https:// at that address?"
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused", running
    if isinstance(cause, ConnectionResetError):
        return "connection reset", running
    if isinstance(cause, TimeoutError):
        return "no answer in time", "is the gateway running, and reachable from here?"
    if isinstance(cause, OSError) and cause.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return ("host unreachable" if cause.errno == errno.EHOSTUNREACH else "network unreachable"), (
            "is the URL right, and the gateway reachable from here?"
        )
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower(), running
    return type(exc).__name__, running


def transport_failure(
    where: str, exc: BaseException, attempts: int = 1, *, timeout: float | None = None
) -> TransportError:
    """The SDK's error for a gateway that could not be reached: one sentence naming ``where`` (a base URL), what
    went wrong and after how many ``attempts``; :class:`~xinyong.errors.RequestTimeout` for a timeout."""
    reason, question = _reason(exc)
    if isinstance(exc, TimeoutError) and timeout is not None:
        reason = f"no answer within {timeout:g} s"
    tries = f" after {attempts} tries" if attempts > 1 else ""
    message = f"Cannot reach {where} ({reason}){tries} — {question}"
    kind = RequestTimeout if isinstance(exc, TimeoutError) else TransportError
    return kind(message, url=where, reason=reason, attempts=attempts)


class GatewaySession:
    """Session ownership, closed state, timeout and back-off of an SDK object that talks to the gateway."""

    _closed_message: ClassVar[str]
    """The :class:`~xinyong.errors.ClientClosedError` message once closed."""
    _logger_name: ClassVar[str]
    """The standard-library logger of the class's retry lines (``xinyong.sender``, ``xinyong.client``)."""

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession | None,
        timeout: float,
        max_attempts: int,
        backoff_initial: float,
        backoff_max: float,
        retry_after_max: float,
        concurrency: int,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._base_url = base_url.rstrip("/")
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_attempts = max_attempts
        self._wait = RetryWait(backoff_initial, backoff_max, retry_after_max)
        self._concurrency = concurrency
        self._sleep = sleep

    async def __aenter__(self) -> Self:
        self._ensure_session()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session if it was created here (not one passed in). Idempotent."""
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def _retried(self, attempt: Callable[..., Awaitable[T]], *args: Any, log_event: str, **fields: Any) -> T:
        """``attempt(*args)`` in the SDK's retry loop; each retry is a ``log_event`` line at level info with
        ``fields``. A failure to reach the gateway is raised as one :class:`TransportError` that says how many
        tries were made; any other error as the last attempt raised it."""
        tries = 0

        async def counted(*arguments: Any) -> T:
            nonlocal tries
            tries += 1
            return await attempt(*arguments)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            get_logger(self._logger_name).info(
                log_event,
                **fields,
                attempt=state.attempt_number,
                wait_s=round(state.upcoming_sleep, 3),
                reason=type(exc).__name__ if exc else None,
                status=getattr(exc, "status", None),
            )

        attempts = retrying(
            max_attempts=self._max_attempts, wait=self._wait, sleep=self._sleep, before_sleep=before_sleep
        )
        try:
            return await attempts(counted, *args)
        except TransportError as exc:
            cause = exc.__cause__
            if tries <= 1 or cause is None:
                raise
            raise transport_failure(self._base_url, cause, tries, timeout=self._timeout.total) from cause

    async def _exchange(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes, CIMultiDictProxy[str]]:
        """One HTTP exchange: ``(status, body, headers)``; aiohttp's failures become the SDK's transport errors."""
        session = self._ensure_session()
        try:
            async with session.request(
                method, url, data=data, headers=headers, params=params, timeout=self._timeout
            ) as response:
                return response.status, await response.read(), response.headers
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_failure(self._base_url, exc, timeout=self._timeout.total) from exc

    def _answer_error(self, status: int, payload: bytes, headers: Mapping[str, str]) -> ApiError:
        """The error for a non-2xx answer (see :func:`xinyong.retries.error_for_answer`)."""
        return error_for_answer(status, payload, headers, where=self._base_url)

    def _unexpected(self, status: int, headers: Mapping[str, str], expected: str) -> ApiError:
        """The error for a 2xx answer that is not ``expected`` (see :func:`xinyong.retries.unexpected_answer`)."""
        return unexpected_answer(status, headers, expected, where=self._base_url)

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ClientClosedError(self._closed_message)
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": "xinyong-python"})
        return self._session


class ClosesOnExit(ABC):
    """``with`` support for an object whose :meth:`close` is synchronous and idempotent."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
