"""What the commands of ``xinyong-gateway`` share: output, errors, argument types, the opened resources and who acts
(the audit log's actor)."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from xinyong_gateway import audit
from xinyong_gateway.crypto import MasterKey, master_key_of
from xinyong_gateway.errors import GatewayError, StoreError
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.store import API_SCOPES, ApiScope, AuditEntry, Micros, Store, from_micros, open_store

__all__ = [
    "CliError",
    "Handler",
    "Output",
    "Resources",
    "actor_of",
    "add_command",
    "duration",
    "iso",
    "open_resources",
    "policy_option",
    "positive",
    "scopes",
]

Handler = Callable[[GatewaySettings, argparse.Namespace, "Output"], int]
"""A command's body (``set_defaults(handler=…)``): settings, the parsed arguments, the output; the exit status."""


class CliError(Exception):
    """A usage problem found after parsing: printed as one sentence, exit status 2."""


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
    """Resolve the master key (``XINYONG_MASTER_KEY`` or the SQLite key file), open the store, apply pending
    migrations when ``migrate``, and check that the database was sealed under this key; closed on exit."""
    master = master_key_of(settings)
    async with open_store(settings.database_url) as store:
        applied = await store.migrate() if migrate else []
        await store.check_master_key(master.check_value)
        yield Resources(store, master, applied, actor_of(settings))


# -- argument types and options ---------------------------------------------------------------------------
def duration(text: str) -> timedelta:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (examples: 0, 90m, 24h, 7d)")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return timedelta(seconds=value * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def scopes(text: str) -> tuple[ApiScope, ...]:
    named = [scope.strip() for scope in text.split(",") if scope.strip()]
    unknown = [scope for scope in named if scope not in API_SCOPES]
    if unknown or not named:
        raise argparse.ArgumentTypeError(f"scopes are a comma-separated list of {', '.join(API_SCOPES)}")
    return tuple(scope for scope in API_SCOPES if scope in named)


def policy_option(parser: argparse.ArgumentParser, what: str = "credit policy") -> None:
    parser.add_argument("--policy", metavar="FILE", help=f"{what} (default: $XINYONG_POLICY_FILE or the shipped one)")


def add_command(group: Any, name: str, help_text: str, example: str) -> argparse.ArgumentParser:
    """A command (or an action of a command group) with its one-line help, the same as its description, and an
    example."""
    parser: argparse.ArgumentParser = group.add_parser(
        name,
        help=help_text,
        description=help_text[0].upper() + help_text[1:] + ".",
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser
