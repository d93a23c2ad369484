"""What the commands of ``xinyong-gateway`` share: output, errors and interrupts, progress on stderr, argument types,
the opened resources and who acts (the audit log's actor)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import difflib
import getpass
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TextIO, TypeVar

from xinyong_gateway import audit
from xinyong_gateway.credit.documents import plural
from xinyong_gateway.crypto import MasterKey, master_key_of
from xinyong_gateway.errors import GatewayError, StoreError
from xinyong_gateway.keyring import unlock
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.store import API_SCOPES, ApiScope, AuditEntry, Micros, Store, from_micros, open_store

__all__ = [
    "EXIT_INTERRUPTED",
    "CliError",
    "Handler",
    "Interrupted",
    "Output",
    "Progress",
    "Resources",
    "actor_of",
    "add_command",
    "duration",
    "help_formatter",
    "iso",
    "open_resources",
    "os_error_sentence",
    "plural",
    "policy_option",
    "positive",
    "run_until_interrupted",
    "scopes",
    "source_ids",
    "top_help_formatter",
]

T = TypeVar("T")
EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT), as shells report it."""

Handler = Callable[[GatewaySettings, argparse.Namespace, "Output"], int]
"""A command's body (``set_defaults(handler=…)``): settings, the parsed arguments, the output; the exit status."""


class CliError(Exception):
    """A usage problem found after parsing: printed as one sentence, exit status 2."""


class Interrupted(Exception):  # noqa: N818 -- the user stopped the command: not an error
    """Ctrl-C, with one sentence of what was done and whether running the command again is safe (exit status 130)."""


def run_until_interrupted(main: Coroutine[Any, Any, T], interrupted: Callable[[], str]) -> T:
    """``asyncio.run(main)``; Ctrl-C raises :class:`Interrupted` with ``interrupted()``, called once ``main`` has
    unwound (a coroutine may await in its handler of ``CancelledError``, e.g. to learn whether a commit happened)."""
    try:
        return asyncio.run(main)
    except KeyboardInterrupt:
        raise Interrupted(interrupted()) from None


def os_error_sentence(exc: OSError) -> str:
    """The standard library's ``[Errno 2] No such file or directory: 'x'`` as a sentence: ``x: No such file or
    directory.``"""
    reason = exc.strerror or type(exc).__name__
    return f"{exc.filename}: {reason}." if exc.filename else f"{reason}."


class Progress:
    """How far a long command is, on stderr (never stdout, which holds results).

    On a terminal: one live line, redrawn in place at most 4 times a second and ended when the command ends.
    Otherwise (a pipe, a file, a CI log): a plain line ``xinyong-gateway COMMAND: …`` every ``interval`` seconds
    (``XINYONG_PROGRESS_INTERVAL``, 5 s by default; 0 writes every update), so a long run shows it is alive
    without flooding the log; a run shorter than the interval writes none."""

    def __init__(self, command: str, interval: float, *, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._live = self._stream.isatty()
        self._prefix = f"xinyong-gateway {command}: "
        self._every = 0.25 if self._live else interval
        self._last = float("-inf") if self._live else time.monotonic()
        self._width = 0
        self._skipped: str | None = None
        """The latest state not shown (too soon after the last one): a live line ends with it."""

    def show(self, text: str) -> None:
        now = time.monotonic()
        if now - self._last < self._every:
            self._skipped = text
            return
        self._last, self._skipped = now, None
        if self._live:
            self._draw(text)
        else:
            self._stream.write(f"{self._prefix}{text}\n")
            self._stream.flush()

    def close(self) -> None:
        """End the live line, showing the last state (the summary or an error starts on a line of its own)."""
        if self._live and self._skipped is not None:
            self._draw(self._skipped)
        self._skipped = None
        if self._width:
            self._stream.write("\n")
            self._stream.flush()
            self._width = 0

    def _draw(self, text: str) -> None:
        self._stream.write(f"\r{text}{' ' * max(0, self._width - len(text))}")
        self._stream.flush()
        self._width = len(text)


class Output:
    """Human-readable on a terminal, JSON otherwise (or with ``--json``)."""

    def __init__(self, force_json: bool) -> None:
        self.json = force_json or not sys.stdout.isatty()

    def emit(self, data: Any, human: str) -> None:
        sys.stdout.write((json.dumps(data, ensure_ascii=False) if self.json else human) + "\n")


def iso(micros: Micros | None) -> str | None:
    """An instant of the store in UTC to the second, ``2026-03-01T08:00:00Z`` (None stays None)."""
    if micros is None:
        return None
    return from_micros(micros).isoformat(timespec="seconds").replace("+00:00", "Z")


def actor_of(settings: GatewaySettings) -> str:
    """Who the audit log says acted: ``--actor`` / ``XINYONG_ACTOR``, else the OS user (``getpass.getuser()``: the
    ``LOGNAME`` or ``USER`` variable, else the account), else the numeric user id. A claim, not a proof: whoever runs
    the command with the master key could claim another name."""
    if settings.actor:
        return settings.actor.strip()
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no such variable and no passwd entry for the uid (a bare container)
        return f"uid {os.getuid()}"


@dataclass(frozen=True, slots=True)
class Resources:
    """The configured database's store, open and checked against the master key, and that key."""

    store: Store
    master: MasterKey
    applied: list[str] = field(default_factory=list)
    """The migrations this opening applied (``open_resources(…, migrate=True)``)."""
    actor: str = ""
    """Who runs the command (:func:`actor_of`), for the audit log."""

    async def audit(self, action: str, target: str, details: dict[str, Any] | None = None) -> AuditEntry:
        """Record an action this command has done in the audit log (``audit.record``), as :attr:`actor`.

        The action is done by then: when the log cannot record it, the error says so (exit status 1)."""
        try:
            return await audit.record(self.store, self.master, self.actor, action, target, details)
        except StoreError as exc:
            raise GatewayError(
                f"The {action} of {target} was done, but the audit log could not record it: {exc}"
            ) from exc


@contextlib.asynccontextmanager
async def open_resources(settings: GatewaySettings, *, migrate: bool = False) -> AsyncIterator[Resources]:
    """Open the store, resolve the master key (``XINYONG_MASTER_KEY`` or the SQLite key file), apply pending
    migrations when ``migrate``, and check that the database was sealed under this key; closed on exit.

    Only ``migrate`` creates anything (the SQLite file, its directory and key file): any other command opens the
    database first, so a mistyped ``--db`` or the wrong directory is "no database at …", and leaves nothing behind."""
    if migrate:
        master_key_of(settings, create=True)  # a new SQLite database's key file, made before the database
    async with open_store(settings.database_url, create=migrate) as store:
        if not migrate:
            master_key_of(settings)  # a missing key is reported before a missing schema
        applied = await store.migrate() if migrate else []
        master = await unlock(store, settings)
        yield Resources(store, master, applied, actor_of(settings))


# -- argument types and options ---------------------------------------------------------------------------
def duration(text: str) -> timedelta:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (examples: 0, 90m, 24h, 7d)")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return timedelta(seconds=value * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])


_SOURCE_ID = re.compile(r"src_[A-Za-z0-9_]{1,64}")


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def scopes(text: str) -> tuple[ApiScope, ...]:
    """``screen,changes`` as scopes; an unknown one is named, with the valid ones (and the one meant, when close)."""
    named = [scope.strip() for scope in text.split(",") if scope.strip()]
    valid = ", ".join(API_SCOPES)
    unknown = [scope for scope in named if scope not in API_SCOPES]
    if not named:
        raise argparse.ArgumentTypeError(f"no scope given: the scopes are {valid} (comma-separated)")
    if unknown:
        meant = [difflib.get_close_matches(scope.lower(), API_SCOPES, n=1, cutoff=0.6) for scope in unknown]
        guesses = [f"'{match[0]}'" for match in meant if match]
        guess = f" (did you mean {' and '.join(guesses)}?)" if len(guesses) == len(unknown) else ""
        names = " and ".join(repr(scope) for scope in unknown)
        raise argparse.ArgumentTypeError(
            f"unknown scope{'s' if len(unknown) > 1 else ''} {names}{guess}: the scopes are {valid} (comma-separated)"
        )
    return tuple(scope for scope in API_SCOPES if scope in named)


def source_ids(text: str) -> tuple[str, ...]:
    """``src_a,src_b`` as source ids, each once (whether they exist is checked against the store)."""
    named = tuple(dict.fromkeys(source.strip() for source in text.split(",") if source.strip()))
    if not named:
        raise argparse.ArgumentTypeError("no source id given (comma-separated ids from `sources list`)")
    malformed = [source for source in named if not _SOURCE_ID.fullmatch(source)]
    if malformed:
        raise argparse.ArgumentTypeError(f"not a source id: {malformed[0]!r} (they look like src_…)")
    return named


def policy_option(parser: argparse.ArgumentParser, what: str = "credit policy") -> None:
    parser.add_argument("--policy", metavar="FILE", help=f"{what} (default: $XINYONG_POLICY_FILE or the shipped one)")


class help_formatter(argparse.RawDescriptionHelpFormatter):  # noqa: N801 -- argparse's formatter_class is a callable
    """Help laid out for 80 columns whatever the terminal, the help text of each command and option from column 18:
    a group's help lists each of its commands on one line (a test holds every command's one-line help to that)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=18, width=80)
        # argparse measures a group's commands as if indented like options, then indents them 2 more: without this,
        # the longest name ("signing-keys") would be pushed onto a line of its own.
        self._action_max_length = 16


class top_help_formatter(argparse.RawDescriptionHelpFormatter):  # noqa: N801 -- as help_formatter
    """:class:`help_formatter` for the top-level help, whose command names are longer ("subscriptions"): help text from
    column 19."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=19, width=80)
        self._action_max_length = 17


def add_command(
    group: Any, name: str, help_text: str, example: str, *, description: str | None = None
) -> argparse.ArgumentParser:
    """A command (or an action of a command group) with its one-line help (what its group's help lists), its
    description (default: the help as a sentence) and an example."""
    parser: argparse.ArgumentParser = group.add_parser(
        name,
        help=help_text,
        description=description or help_text[0].upper() + help_text[1:] + ".",
        epilog=f"example:\n  {example}",
        formatter_class=help_formatter,
    )
    return parser
