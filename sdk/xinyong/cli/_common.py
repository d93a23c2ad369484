"""What the ``xinyong`` subcommands share: exit codes, configuration (URL, secrets from files or the environment,
never from the command line), one-sentence errors, a progress line, and the summary printer."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from xinyong.client import Client
from xinyong.errors import ApiError, AuthenticationError, PermissionDeniedError, XinyongError
from xinyong.mirror import DEFAULT_MAX_AGE, ListMirror

EXIT_OK: Final = 0
EXIT_SOME_BAD: Final = 1
"""Some rows or events were bad or rejected; the others were handled."""
EXIT_CANNOT_RUN: Final = 2
"""Nothing could be done (or the run stopped): usage, configuration, an unreachable gateway, a refused key."""
EXIT_INTERRUPTED: Final = 130

DEFAULT_URL: Final = "http://127.0.0.1:8080"
URL_ENV: Final = "XINYONG_URL"
API_KEY_ENV: Final = "XINYONG_API_KEY"
LOOKUP_SECRET_ENV: Final = "XINYONG_LOOKUP_SECRET"  # noqa: S105 -- the variable's name, not a secret

PARSER_OPTIONS: Final[dict[str, Any]] = {"formatter_class": argparse.RawDescriptionHelpFormatter, "allow_abbrev": False}
"""Of every parser: epilogs keep their lines, and no option may be abbreviated (``--api-key`` must never be taken for
``--api-key-file``, which would read a key given on the command line as a file name)."""


class CliError(Exception):
    """A run that cannot go on: one sentence for stderr, and the exit code (2 unless said otherwise)."""

    def __init__(self, message: str, code: int = EXIT_CANNOT_RUN) -> None:
        super().__init__(message)
        self.code = code


def add_url_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", metavar="URL", help=f"the gateway's base URL (default: ${URL_ENV}, else {DEFAULT_URL})"
    )


def add_api_key_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api-key-file",
        metavar="FILE",
        help=f"a file holding the API key xyk_... (default: ${API_KEY_ENV}); never pass the key itself",
    )


def add_lookup_secret_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lookup-secret-file",
        metavar="FILE",
        help=f"a file holding the API key's lookup secret xyls_... (default: ${LOOKUP_SECRET_ENV})",
    )


_DURATION = re.compile(r"([0-9]+)\s*([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def max_age(text: str) -> timedelta:
    """``90s``, ``30m``, ``1h``, ``2d`` as a positive duration (an argparse type)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90s, 30m, 1h or 2d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def add_max_age_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-age",
        type=max_age,
        default=DEFAULT_MAX_AGE,
        metavar="DURATION",
        help="how old the last sync may be before the mirror counts as stale (default 1h; e.g. 30m, 2h, 1d)",
    )


def gateway_url(args: argparse.Namespace) -> str:
    url: str = args.url or os.environ.get(URL_ENV) or DEFAULT_URL
    if not url.startswith(("http://", "https://")):
        raise CliError(f"The gateway URL must start with http:// or https:// (got {url!r}).")
    return url


def read_secret_file(path: str, what: str) -> str:
    """The first non-empty line of ``path``; errors name the file, never its content."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise CliError(f"Cannot read {what} from {path}: {reason}.") from None
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    raise CliError(f"The file {path} is empty; it should hold {what}.")


def secret_from(file: str | None, env: str, what: str, option: str) -> str:
    """A secret from ``file`` if given, else from the environment variable ``env``."""
    if file:
        return read_secret_file(file, what)
    value = os.environ.get(env, "").strip()
    if not value:
        raise CliError(f"No {what}: set {env} or pass {option} FILE.")
    return value


def api_key(args: argparse.Namespace) -> str:
    return secret_from(args.api_key_file, API_KEY_ENV, "API key", "--api-key-file")


def open_mirror(path: str, args: argparse.Namespace, client: Client | str | None, **options: Any) -> ListMirror:
    """The list mirror at ``path`` with the lookup secret of ``args`` (or the environment); ``options`` are
    :class:`~xinyong.ListMirror`'s."""
    secret = secret_from(args.lookup_secret_file, LOOKUP_SECRET_ENV, "lookup secret", "--lookup-secret-file")
    try:
        return ListMirror(path, client, secret, **options)
    except XinyongError as exc:
        raise CliError(str(exc)) from exc


def sentence(text: str) -> str:
    """``text`` ending as a sentence does (a full stop unless it ends with one, or with a question)."""
    text = text.rstrip()
    return text if text.endswith((".", "?", "!")) else text + "."


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 line``, ``2 lines``, ``1,000 rows``."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"


def gateway_failure(exc: XinyongError, url: str) -> CliError:
    """A failure of the query API as one sentence (exit code 2)."""
    if isinstance(exc, ApiError) and not exc.from_gateway:  # something else answers there: its message says so
        return CliError(sentence(str(exc)))
    if isinstance(exc, AuthenticationError):
        return CliError(f"The gateway at {url} refused the API key (401): is it the right key, and not revoked?")
    if isinstance(exc, PermissionDeniedError):
        return CliError(f"The gateway at {url} refused the request: {exc.detail or exc.title} (403).")
    if isinstance(exc, ApiError):
        return CliError(sentence(f"The gateway at {url} answered {exc}"))
    return CliError(sentence(str(exc)))


class Progress:
    """A one-line progress display on stderr, redrawn in place (``\\r``) at most 4 times a second; silent unless
    stderr is a terminal, so files and pipes get only the summary."""

    def __init__(self, *, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._shown = 0.0
        self._drawn = False

    def show(self, text: str, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._shown < 0.25:
            return
        self._shown = now
        self._drawn = True
        sys.stderr.write(f"\r{text} ")
        sys.stderr.flush()

    def done(self) -> None:
        if self._drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._drawn = False


def bar(done: int, total: int, width: int = 24) -> str:
    """``[#######.........]  45.0%``"""
    fraction = done / total if total else 1.0
    filled = int(fraction * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {100 * fraction:5.1f}%"


def emit(summary: Mapping[str, Any], human: str, *, force_json: bool) -> None:
    """The run's summary on stdout: one JSON object for programs (not a terminal, or ``--json``), else prose."""
    if force_json or not sys.stdout.isatty():
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(human + "\n")
    sys.stdout.flush()


def warn(command: str, message: str) -> None:
    sys.stderr.write(f"xinyong {command}: {message}\n")
    sys.stderr.flush()
