"""Lifecycle shared by the SDK's objects.

- :class:`GatewaySession`, what :class:`~xinyong.Client` and :class:`~xinyong.EventSender` share: one
  ``aiohttp.ClientSession``, created on first use unless the caller passed one (a caller's session is never closed
  here), the per-request timeout, the retry parameters (:mod:`xinyong.retries`), and the closed state: once closed,
  an object is not reusable.
- :class:`ClosesOnExit`: ``with`` support for the objects that close synchronously (:class:`~xinyong.SyncClient`,
  :class:`~xinyong.ListMirror`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import ClassVar, Self

import aiohttp
from multidict import CIMultiDictProxy

from xinyong.errors import ClientClosedError, RequestTimeout, TransportError
from xinyong.retries import RetryWait

__all__ = ["ClosesOnExit", "GatewaySession"]


class GatewaySession:
    """Session ownership, closed state, timeout and back-off of an SDK object that talks to the gateway."""

    _closed_message: ClassVar[str]
    """The :class:`~xinyong.errors.ClientClosedError` message once closed."""

    def __init__(
        self,
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

    async def _exchange(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        where: str,
    ) -> tuple[int, bytes, CIMultiDictProxy[str]]:
        """One HTTP exchange: ``(status, body, headers)``; aiohttp's failures become the SDK's transport errors
        (``where`` names the gateway in their message)."""
        session = self._ensure_session()
        try:
            async with session.request(
                method, url, data=data, headers=headers, params=params, timeout=self._timeout
            ) as response:
                return response.status, await response.read(), response.headers
        except TimeoutError as exc:
            raise RequestTimeout(f"The gateway did not answer within {self._timeout.total} s.") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(f"Cannot reach the gateway at {where}: {exc}") from exc

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
