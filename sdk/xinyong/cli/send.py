"""``xinyong send FILE --source ID --secret-file FILE | --key-file FILE``: a sender's bulk upload of events.

Each non-empty line of FILE is one event envelope (``{"type", "timestamp", "data"}``), posted signed by the SDK's
``EventSender`` (fresh signature on every retry; transport errors, 429 and 5xx retried with back-off).

**Webhook ids.** The ``webhook-id`` a line is sent under is its top-level ``"id"`` when it has one (taken out of the
body, which is then the rest of the object as compact JSON), else ``line-`` and 32 hex digits of a SHA-256 of the
line with any person's id and name left out (the line is then sent byte for byte): the scheme of
:mod:`xinyong.ndjson`, which ``xinyong-gateway import`` uses too. The id is the sender's own dedupe key: sending the
same file again, or importing it at the gateway, answers ``duplicate`` for every line, never counting an event twice.

**Before any request** the first line must be a JSON object (``Line 1 of x.csv is not JSON — is this NDJSON, one
event a line?``, exit status 2); a later line that is not a JSON object is rejected here, without a request.

**Outcome.** Each line is accepted, duplicate, or rejected (a 4xx problem from the gateway, or an ``"id"`` that cannot
be a webhook id, or a line that is not a JSON object). Rejected lines are written to ``--rejects`` (default
``FILE.send-rejected.ndjson``, never the file ``xinyong-gateway import`` writes for the same input) as JSON lines
with the line number, the webhook id, the status and the problem's type, detail and JSON Pointers, never the line's
content (it may hold personal data); a complete run without rejections removes a rejects file left by an earlier run.
The run stops (exit status 2) when going on cannot help: the gateway unreachable after the retries, an unknown or
disabled source, a key the gateway does not accept, or a clock more than 5 minutes off. Lines sent before stay
stored; the same command again is safe.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from xinyong import problems
from xinyong.errors import (
    ApiError,
    AuthenticationError,
    InvalidKeyError,
    MalformedHeadersError,
    NotFoundError,
    RateLimitError,
    XinyongError,
)
from xinyong.ndjson import NotNdjsonError, check_first_line, numbered_lines, webhook_id_and_body
from xinyong.rejects import RejectsFile, default_rejects_path
from xinyong.responses import WebhookAck
from xinyong.sender import EventSender
from xinyong.webhooks import SigningKey, SigningSecret

from ._common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_BAD,
    PARSER_OPTIONS,
    CliError,
    Progress,
    add_url_option,
    bar,
    emit,
    gateway_url,
    plural,
    read_secret_file,
    sentence,
)

__all__ = ["add_parser"]

CHUNK_LINES: Final = 500
"""Lines read and sent at a time (memory stays bounded whatever the file's size)."""

_EPILOG = """\
examples:
  $ xinyong send deliveries.ndjson --source src_... --key-file courier-key.json     (Ed25519, from `xinyong keygen`)
  $ xinyong send reports.ndjson --source src_... --secret-file marketplace.secret   (whsec_...)
  $ xinyong send deliveries.ndjson --source src_... --key-file courier-key.json     (again: every line "duplicate")

deliveries.ndjson, one event a line (an "id" member, if any, is the line's webhook id):
  {"id": "wb-YT7310000", "type": "delivery.recorded", "timestamp": "2026-11-27T10:00:00+08:00", "data": {...}}

A line without "id" is sent under "line-" + 32 hex digits of a SHA-256 of the line (a person's id and name
left out), the id `xinyong-gateway import` gives it too, so sending a file again never counts an event twice.
Rejected lines go to FILE.send-rejected.ndjson (line number, status, problem type, detail and JSON Pointers;
never the line's content). The secret or key is read from a file, never from the command line; a key file may be
the JSON that `xinyong keygen --json` prints.

exit status: 0 every line accepted or duplicate, 1 some lines rejected, 2 the upload could not run or stopped.
"""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "send",
        help="post the events of an NDJSON file, signed, with retries (bulk upload)",
        description="Post every event of an NDJSON file to the gateway, signed for one source.",
        epilog=_EPILOG,
        **PARSER_OPTIONS,
    )
    parser.add_argument("file", metavar="FILE", help="events, one JSON envelope a line")
    parser.add_argument("--source", required=True, metavar="ID", help="the source id (src_...) to send for")
    keys = parser.add_mutually_exclusive_group(required=True)
    keys.add_argument("--secret-file", metavar="FILE", help="a file holding the source's whsec_... secret (v1)")
    keys.add_argument(
        "--key-file", metavar="FILE", help="a file holding a whsk_... Ed25519 signing key, or keygen's JSON (v1a)"
    )
    parser.add_argument(
        "--rejects", metavar="FILE", help="where to describe rejected lines (default: FILE.send-rejected.ndjson)"
    )
    parser.add_argument("--concurrency", type=int, default=16, metavar="N", help="events in flight (default 16)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON even on a terminal")
    add_url_option(parser)
    parser.set_defaults(handler=run)


def _signing_key(args: argparse.Namespace) -> SigningSecret | SigningKey:
    if args.secret_file:
        text = read_secret_file(args.secret_file, "the source's secret")
        try:
            return SigningSecret.parse(text)
        except InvalidKeyError as exc:
            raise CliError(f"{args.secret_file} does not hold a whsec_ secret: {exc}") from None
    text = read_secret_file(args.key_file, "the signing key")
    if text.startswith("{"):  # the JSON of `xinyong keygen --json`
        try:
            text = str(json.loads(Path(args.key_file).read_text(encoding="utf-8"))["signing_key"])
        except (ValueError, KeyError, TypeError, OSError):
            raise CliError(f"{args.key_file} is JSON without a signing_key member.") from None
    try:
        return SigningKey.parse(text)
    except InvalidKeyError as exc:
        raise CliError(f"{args.key_file} does not hold a whsk_ signing key: {exc}") from None


# -- lines ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rejection:
    """A line that was not stored, and why (never what it said)."""

    line: int
    webhook_id: str | None
    status: int | None
    """The gateway's HTTP status; None when the line was refused here (not a JSON object, or an ``"id"`` that cannot
    be a webhook id)."""
    problem: str
    detail: str
    errors: list[dict[str, str]]

    def to_json(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "webhook_id": self.webhook_id,
            "status": self.status,
            "problem": self.problem,
            "detail": self.detail,
            "errors": self.errors,
        }


@dataclass(slots=True)
class Tally:
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0

    @property
    def lines(self) -> int:
        return self.accepted + self.duplicate + self.rejected


def _stop(exc: XinyongError, url: str, source: str, tally: Tally) -> CliError:
    """The error that ends a run, as one sentence; what was sent before stays stored."""
    if isinstance(exc, NotFoundError) and exc.type == problems.SOURCE_NOT_FOUND:
        reason = f"the gateway at {url} knows no active source {source}"
    elif isinstance(exc, AuthenticationError) and exc.type == problems.TIMESTAMP_OUT_OF_TOLERANCE:
        reason = "the gateway says this machine's clock is more than 5 minutes off; set the clock right"
    elif isinstance(exc, AuthenticationError) and exc.from_gateway:
        reason = f"the gateway does not accept the signature: is the secret or key file the one of source {source}?"
    elif isinstance(exc, RateLimitError) and exc.from_gateway:
        reason = f"the gateway kept answering 429 (rate limit of source {source}) after the retries"
    else:
        reason = str(exc)
    sent = tally.accepted + tally.duplicate
    were = "was" if sent == 1 else "were"
    return CliError(
        f"{sentence('The upload stopped: ' + reason)} {plural(sent, 'line')} {were} stored (or already {were})"
        " before; running the same command again is safe (they answer duplicate)."
    )


def _interrupted(tally: Tally, rejects_path: Path) -> CliError:
    """What Ctrl-C leaves: the counts so far, and why running the command again is safe (exit status 130)."""
    see = f" (listed in {rejects_path})" if tally.rejected else ""
    return CliError(
        f"Interrupted after {plural(tally.lines, 'line')}: {tally.accepted:,} accepted, {tally.duplicate:,} duplicate,"
        f" {tally.rejected:,} rejected{see}; lines in flight may or may not be stored, and running the same command"
        " again is safe (stored lines answer duplicate).",
        EXIT_INTERRUPTED,
    )


def _is_fatal(exc: XinyongError) -> bool:
    """An answer that every other line would get as well: stop rather than reject them all."""
    if not isinstance(exc, ApiError):
        return True  # the gateway unreachable after the retries
    return exc.status in (401, 404, 429) or exc.status >= 500


def _not_an_object(number: int, line: bytes) -> Rejection:
    """The rejection of a line that is not a JSON object, in the words of the gateway's answer to such a body."""
    try:
        json.loads(line)
    except ValueError:
        return Rejection(number, None, None, problems.BODY_NOT_JSON, "The line is not valid UTF-8 JSON.", [])
    errors = [{"pointer": "", "detail": "Input should be an object"}]
    return Rejection(
        number, None, None, problems.SCHEMA_INVALID, "The line must be a JSON object (the event envelope).", errors
    )


async def _send(
    args: argparse.Namespace,
    url: str,
    key: SigningSecret | SigningKey,
    stream: IO[bytes],
    rejects: RejectsFile,
    tally: Tally,
) -> None:
    progress = Progress()
    total = os.fstat(stream.fileno()).st_size
    lines = numbered_lines(stream)
    first = next(lines, None)
    if first is None:
        return
    try:
        check_first_line(first[0], first[1], args.file)
    except NotNdjsonError as exc:
        raise CliError(str(exc)) from None
    lines = itertools.chain([first], lines)
    try:
        async with EventSender(url, args.source, key, concurrency=args.concurrency) as sender:
            while chunk := [item for _, item in zip(range(CHUNK_LINES), lines, strict=False)]:
                await _send_chunk(sender, chunk, tally, rejects, url, args.source)
                progress.show(
                    f"{bar(chunk[-1][2], total)}  {tally.lines:,} lines  accepted {tally.accepted:,}"
                    f"  duplicate {tally.duplicate:,}  rejected {tally.rejected:,}"
                )
    finally:
        progress.done()


async def _send_chunk(
    sender: EventSender,
    chunk: list[tuple[int, bytes, int]],
    tally: Tally,
    rejects: RejectsFile,
    url: str,
    source: str,
) -> None:
    outgoing: list[tuple[int, str, bytes]] = []
    rejections: list[Rejection] = []
    for number, line, _ in chunk:
        try:
            webhook_id, body = webhook_id_and_body(line)
        except MalformedHeadersError as exc:
            detail = "The line's webhook id is not valid."
            errors = [{"pointer": "/id", "detail": str(exc)}]
            rejections.append(Rejection(number, None, None, problems.SCHEMA_INVALID, detail, errors))
            continue
        except ValueError:  # the gateway would refuse it as ingest refuses such a body; no need to ask it
            rejections.append(_not_an_object(number, line))
            continue
        outgoing.append((number, webhook_id, body))
    results = await sender.send_many([(webhook_id, body) for _, webhook_id, body in outgoing])
    fatal: XinyongError | None = None
    for (number, webhook_id, _), result in zip(outgoing, results, strict=True):
        if isinstance(result, WebhookAck):
            if result.status == "accepted":
                tally.accepted += 1
            else:
                tally.duplicate += 1
        elif _is_fatal(result):
            fatal = fatal or result
        else:
            assert isinstance(result, ApiError)  # noqa: S101 -- _is_fatal let through only ApiError
            errors = [{"pointer": str(e.get("pointer", "")), "detail": str(e.get("detail", ""))} for e in result.errors]
            detail = result.detail or result.title
            rejections.append(Rejection(number, webhook_id, result.status, result.type, detail, errors))
    for rejection in sorted(rejections, key=lambda rejection: rejection.line):
        tally.rejected += 1
        rejects.write([rejection])
    if fatal is not None:  # after the chunk's other answers are counted, so the message's count is exact
        raise _stop(fatal, url, source, tally)


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"No such file: {path}.")
    if args.rejects and Path(args.rejects).resolve() == path.resolve():
        raise CliError("--rejects must name another file than the input.")
    if args.concurrency < 1:
        raise CliError("--concurrency must be at least 1.")
    url = gateway_url(args)
    key = _signing_key(args)
    rejects_path = Path(args.rejects) if args.rejects else default_rejects_path(path, "send")
    started = time.monotonic()
    try:
        tally = Tally()
        with path.open("rb") as stream, RejectsFile(rejects_path) as rejects:
            asyncio.run(_send(args, url, key, stream, rejects, tally))
    except KeyboardInterrupt:
        raise _interrupted(tally, rejects_path) from None
    except OSError as exc:
        raise CliError(f"Cannot read {path} or write the rejects file: {exc.strerror or exc}.") from None
    elapsed = time.monotonic() - started
    rejected_file = str(rejects_path) if tally.rejected else None
    human = (
        f"Sent {path} for source {args.source}: {tally.accepted:,} accepted, {tally.duplicate:,} duplicate,"
        f" {tally.rejected:,} rejected in {elapsed:.1f} s."
    )
    if rejected_file:
        human += f"\n  Rejected lines (number, status, problem, JSON Pointers): {rejected_file}"
    summary = {
        "accepted": tally.accepted,
        "duplicate": tally.duplicate,
        "rejected": tally.rejected,
        "rejected_file": rejected_file,
        "elapsed_s": round(elapsed, 3),
    }
    emit(summary, human, force_json=args.json)
    return EXIT_SOME_BAD if tally.rejected else EXIT_OK
