"""``xinyong-gateway``: run and administer the gateway.

    xinyong-gateway [--db URL] migrate
    xinyong-gateway [--db URL] serve [--host H] [--port P] [--workers N] [--no-projector]
    xinyong-gateway [--db URL] sources add --kind marketplace|courier|regulator --name NAME
                                           [--uscc CODE] [--public-key whpk_…] [--rate N]
    xinyong-gateway [--db URL] sources list | disable ID | rotate ID [--grace 24h] [--public-key whpk_…]
    xinyong-gateway [--db URL] project [--once]
    xinyong-gateway [--db URL] import FILE.ndjson --source ID [--rejects FILE]
    xinyong-gateway [--db URL] subjects show uscc|ric ID [--reveal]
    xinyong-gateway [--db URL] policy check [FILE] | diff FILE [--examples N] | apply FILE
    xinyong-gateway [--db URL] keys add --name NAME --scopes screen,changes [--rate N] | list | revoke KEY_ID
    xinyong-gateway master-key

Output is human-readable on a terminal and JSON otherwise (``--json`` forces JSON). Errors are one sentence
on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from xinyong.errors import XinyongError
from xinyong.events import SOURCE_KINDS
from xinyong.subjects import validate_uscc
from xinyong.webhooks import VerifyingKey
from xinyong_gateway.access import add_source, rotate_source
from xinyong_gateway.crypto import MasterKey, master_key_for
from xinyong_gateway.errors import GatewayError, ProjectionConflictError
from xinyong_gateway.settings import DEFAULT_DATABASE_URL, GatewaySettings
from xinyong_gateway.store import API_SCOPES, ApiKeyRecord, SourceRecord, Store, open_store
from xinyong_gateway.store.base import ApiScope, from_micros

__all__ = ["main"]

T = TypeVar("T")

EPILOG = """\
examples:
  xinyong-gateway migrate
  xinyong-gateway sources add --kind marketplace --name "Example Mall" --uscc 91330100MA2H9X4W2M
  xinyong-gateway sources add --kind courier --name "Swift Express" --public-key whpk_...
  xinyong-gateway serve --port 8080

The database defaults to $XINYONG_DATABASE_URL, then sqlite:///./var/xinyong.db. The master key comes from
$XINYONG_MASTER_KEY; on SQLite it may instead be the key file <database>.key, created on first use.
"""


class CliError(Exception):
    """A usage problem found after parsing: printed as one sentence, exit status 2."""


def _duration(text: str) -> timedelta:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (examples: 0, 90m, 24h, 7d)")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return timedelta(seconds=value * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _scopes(text: str) -> tuple[ApiScope, ...]:
    scopes = [scope.strip() for scope in text.split(",") if scope.strip()]
    unknown = [scope for scope in scopes if scope not in API_SCOPES]
    if unknown or not scopes:
        raise argparse.ArgumentTypeError(f"scopes are a comma-separated list of {', '.join(API_SCOPES)}")
    return tuple(scope for scope in API_SCOPES if scope in scopes)


def _policy_option(parser: argparse.ArgumentParser, what: str = "credit policy") -> None:
    parser.add_argument("--policy", metavar="FILE", help=f"{what} (default: $XINYONG_POLICY_FILE or the shipped one)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xinyong-gateway",
        description="The xinyong credit-information gateway: signed webhook ingest and its administration.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--db", metavar="URL", help=f"database URL (default: $XINYONG_DATABASE_URL or {DEFAULT_DATABASE_URL})"
    )
    parser.add_argument("--json", action="store_true", help="print JSON even on a terminal")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(group: Any, name: str, help_text: str, example: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = group.add_parser(
            name,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        return parser

    command(commands, "migrate", "create or upgrade the database schema (idempotent)", "xinyong-gateway migrate")

    serve = command(commands, "serve", "run the gateway (HTTP)", "xinyong-gateway serve --host 0.0.0.0 --port 8080")
    serve.add_argument("--host", help="interface to listen on (default: $XINYONG_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: $XINYONG_PORT or 8080)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="gateway processes sharing the port (SO_REUSEPORT), each with its own projector unless"
        " --no-projector; a supervisor restarts any that dies (default 1; more than 1 needs PostgreSQL)",
    )
    serve.add_argument("--log-format", choices=["auto", "json", "console"], help="log renderer (default: auto)")
    serve.add_argument(
        "--no-projector", action="store_true", help="do not project inside this process (run `project` apart)"
    )
    _policy_option(serve)

    project = command(
        commands,
        "project",
        "apply the inbox to credit files and list status (runs inside `serve` unless --no-projector)",
        "xinyong-gateway project --once",
    )
    project.add_argument("--once", action="store_true", help="catch up with the inbox, let time pass, then exit")
    _policy_option(project)

    bulk = command(
        commands,
        "import",
        "load historical events from an NDJSON file into the inbox (checked as ingest does, stored exactly once)",
        "xinyong-gateway import events.ndjson --source src_...",
    )
    bulk.description = (bulk.description or "") + (
        "\n\nEach line is one event envelope {type, timestamp, data}, UTF-8; empty lines are skipped. No"
        " signatures:\nthe source must exist and be active, and each event must be one it may send. A line's"
        ' webhook id is\nits top-level "id" member when present (taken out; the rest is stored re-serialised'
        " compactly),\nelse import- and 32 hex digits of the keyed digest of the line (stored byte for byte)."
        " Importing\nthe same file again stores nothing new. Rejected lines are listed in the rejects file by"
        " number,\nproblem type and JSON Pointers, never by content. Exit status: 0 all lines accepted or"
        " duplicate,\n1 some rejected, 2 the import could not run."
    )
    bulk.add_argument("file", metavar="FILE", help="NDJSON file: one event envelope per line")
    bulk.add_argument("--source", required=True, metavar="ID", help="the active source the events came from")
    bulk.add_argument(
        "--rejects", metavar="FILE", help="where to describe rejected lines (default: FILE.rejected.ndjson)"
    )
    bulk.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="processes checking lines (default: one per CPU, at most 8; 1 for files under 8 MiB)",
    )

    subjects = command(
        commands, "subjects", "inspect credit files", "xinyong-gateway subjects show uscc 91330100MA2H9X4W2M"
    )
    subject_commands = subjects.add_subparsers(dest="subjects_command", metavar="ACTION", required=True)
    show = command(
        subject_commands,
        "show",
        "a regulator's view of one credit file: status, records, status history (masked unless --reveal)",
        "xinyong-gateway subjects show ric 320102199001011234 --reveal",
    )
    show.add_argument("id_type", choices=["uscc", "ric"])
    show.add_argument("id", metavar="ID")
    show.add_argument("--reveal", action="store_true", help="show the identifier and name unmasked")

    policy = command(commands, "policy", "check and compare credit policies", "xinyong-gateway policy check new.toml")
    policy_commands = policy.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    check = command(
        policy_commands,
        "check",
        "validate a policy file and explain each of its rules in one line (exit 1 when it is invalid)",
        "xinyong-gateway policy check new.toml",
    )
    check.add_argument("file", metavar="FILE", nargs="?", help="policy file (default: the current policy)")
    diff = command(
        policy_commands,
        "diff",
        "dry run: who would move between lists under the policy in FILE (writes nothing)",
        "xinyong-gateway policy diff new.toml --examples 5",
    )
    diff.description = (
        "Dry run: replay the whole inbox, in order, under the current policy and under FILE with the pure engine,\n"
        "and compare every subject's status now: a from -> to matrix over black, watch, red and none, and examples\n"
        "of each move with the reason codes gained and lost (resident ids masked). Nothing is written to the\n"
        "database; Ctrl-C stops it (exit 130). Progress goes to stderr on a terminal.\n\n"
        "Memory: every subject's credit file, under both policies, is kept in memory while it runs."
    )
    diff.add_argument("file", metavar="FILE", help="the new policy")
    _policy_option(diff, "current policy")
    diff.add_argument("--examples", type=int, default=3, metavar="N", help="examples per move (default 3)")
    apply = command(
        policy_commands,
        "apply",
        "adopt a policy: replay the whole inbox under it and replace every credit file in one transaction",
        "xinyong-gateway policy apply new.toml",
    )
    apply.add_argument("file", metavar="FILE", help="the policy to adopt (its version must be new, or the same text)")

    sources = command(commands, "sources", "register and manage webhook senders", "xinyong-gateway sources list")
    source_commands = sources.add_subparsers(dest="sources_command", metavar="ACTION", required=True)
    add = command(
        source_commands,
        "add",
        "register a source; prints its id and, for a symmetric source, its secret (shown once)",
        'xinyong-gateway sources add --kind courier --name "Swift Express" --public-key whpk_...',
    )
    add.add_argument("--kind", required=True, choices=SOURCE_KINDS)
    add.add_argument("--name", required=True)
    add.add_argument("--uscc", help="the sender's unified social credit code")
    add.add_argument("--public-key", metavar="whpk_…", help="register an Ed25519 public key (v1a) instead of a secret")
    add.add_argument("--rate", type=_positive, metavar="N", help="own rate limit, verified requests per second")
    command(source_commands, "list", "list sources with their keys and key expiry", "xinyong-gateway sources list")
    disable = command(
        source_commands, "disable", "refuse a source's webhooks from now on", "xinyong-gateway sources disable src_..."
    )
    disable.add_argument("source_id", metavar="ID")
    rotate = command(
        source_commands,
        "rotate",
        "issue a new secret (or register a new public key); old keys stay valid for --grace",
        "xinyong-gateway sources rotate src_... --grace 24h",
    )
    rotate.add_argument("source_id", metavar="ID")
    rotate.add_argument("--grace", type=_duration, default=timedelta(hours=24), help="grace period (default 24h)")
    rotate.add_argument("--public-key", metavar="whpk_…", help="new Ed25519 public key instead of a new secret")

    keys = command(
        commands,
        "keys",
        "issue and revoke API keys of the query side (screening, change feed)",
        "xinyong-gateway keys list",
    )
    key_commands = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    add_key = command(
        key_commands,
        "add",
        "issue an API key; prints it and its lookup secret for the feed's RIC pseudonyms (shown once)",
        'xinyong-gateway keys add --name "云购商城 onboarding" --scopes screen,changes',
    )
    add_key.add_argument("--name", required=True, help="who the key is for (shown in `keys list`)")
    add_key.add_argument(
        "--scopes",
        required=True,
        type=_scopes,
        metavar="SCOPES",
        help=f"comma-separated: {', '.join(API_SCOPES)} (screening, the change feed)",
    )
    add_key.add_argument("--rate", type=_positive, metavar="N", help="own rate limit, requests per second")
    command(key_commands, "list", "list API keys (never their secrets)", "xinyong-gateway keys list")
    revoke_key = command(
        key_commands,
        "revoke",
        "revoke an API key: running gateways refuse it within their refresh interval (2 s by default)",
        "xinyong-gateway keys revoke key_...",
    )
    revoke_key.add_argument("key_id", metavar="KEY_ID")

    command(
        commands,
        "master-key",
        "print a new random master key for XINYONG_MASTER_KEY",
        "xinyong-gateway master-key      # then: export XINYONG_MASTER_KEY=<the printed key>",
    )
    return parser


# -- output ---------------------------------------------------------------------------------------
def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if moment else None


def _source_json(record: SourceRecord) -> dict[str, Any]:
    return {
        "source_id": record.source_id,
        "kind": record.kind,
        "name": record.name,
        "uscc": record.uscc,
        "status": record.status,
        "rate_limit": record.rate_limit,
        "created_at": _iso(record.created_at),
        "disabled_at": _iso(record.disabled_at),
        "keys": [
            {
                "scheme": key.scheme,
                "fingerprint": key.fingerprint,
                "created_at": _iso(key.created_at),
                "expires_at": _iso(key.expires_at),
            }
            for key in record.keys
        ],
    }


class Output:
    def __init__(self, force_json: bool) -> None:
        self.json = force_json or not sys.stdout.isatty()

    def emit(self, data: Any, human: str) -> None:
        sys.stdout.write((json.dumps(data, ensure_ascii=False) if self.json else human) + "\n")


def _human_source(record: SourceRecord) -> str:
    lines = [f"{record.source_id}  {record.kind:<11}  {record.status:<8}  {record.name}"]
    if record.uscc:
        lines.append(f"    uscc {record.uscc}")
    if record.rate_limit:
        lines.append(f"    rate limit {record.rate_limit:g}/s")
    for key in record.keys:
        expiry = f"expires {_iso(key.expires_at)}" if key.expires_at else "current"
        lines.append(f"    key {key.scheme:<3} {key.fingerprint}  {expiry}")
    return "\n".join(lines)


# -- commands ---------------------------------------------------------------------------------------
async def _with_store(settings: GatewaySettings, action: Callable[[Store, MasterKey], Awaitable[T]]) -> T:
    env_key = settings.master_key.get_secret_value() if settings.master_key else None
    master = master_key_for(settings.database_url, env_key)
    async with open_store(settings.database_url) as store:
        await store.check_master_key(master.check_value)
        return await action(store, master)


def _cmd_migrate(settings: GatewaySettings, out: Output) -> int:
    async def run() -> tuple[list[str], int, str]:
        env_key = settings.master_key.get_secret_value() if settings.master_key else None
        master = master_key_for(settings.database_url, env_key)
        async with open_store(settings.database_url) as store:
            applied = await store.migrate()
            await store.check_master_key(master.check_value)
            return applied, (await store.schema_status()).current, store.display_url

    applied, version, database = asyncio.run(run())
    human = (
        f"Applied {len(applied)} migration(s): {', '.join(applied)}; schema is at version {version}."
        if applied
        else f"Schema is up to date (version {version})."
    )
    out.emit({"applied": applied, "schema_version": version, "database": database}, human)
    return 0


def _cmd_serve(settings: GatewaySettings, args: argparse.Namespace) -> int:
    from aiohttp import web

    from xinyong_gateway.logs import configure_logging
    from xinyong_gateway.web.app import create_app, settle_heap

    if args.workers < 1:
        raise CliError("--workers must be at least 1.")
    if args.workers > 1 and settings.database_url.startswith("sqlite:"):
        raise CliError(
            "SQLite serves one process only: --workers above 1 needs a PostgreSQL database (--db postgresql://…)."
        )
    if args.workers > 1:
        from xinyong_gateway.web.workers import serve_workers

        if settings.port == 0:
            raise CliError("--port 0 (any free port) cannot be shared by several workers; choose a port.")
        return serve_workers(settings, args.workers)
    configure_logging(settings.log_format, settings.log_level)
    import structlog

    log = structlog.get_logger("xinyong_gateway.serve")

    database = open_store(settings.database_url).display_url  # never a password in the log

    def announce(_: str) -> None:
        log.info("serving", url=f"http://{settings.host}:{settings.port}", database=database)

    web.run_app(
        settle_heap(create_app(settings)),
        host=settings.host,
        port=settings.port,
        access_log=None,
        print=announce,
        shutdown_timeout=10,
    )
    return 0


def _cmd_project(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    from xinyong_gateway.credit.policy import policy_from
    from xinyong_gateway.credit.projector import Projector
    from xinyong_gateway.logs import configure_logging

    policy = policy_from(settings.policy_file)
    if not args.once:
        configure_logging(settings.log_format, settings.log_level)

    async def run(store: Store, master: MasterKey) -> dict[str, Any]:
        # A long-running projector shares the partitions with the others; a one-off catch-up does them all.
        projector = Projector(store, master, policy, claims=None if args.once else store.claim_partitions())
        if not args.once:
            await projector.run()
        applied = await projector.catch_up()
        return {
            "applied": applied,
            "position": await store.projector_position(),
            "policy_version": projector.policy.version,  # an adopted policy (`policy apply`) wins over the file
        }

    result = asyncio.run(_with_store(settings, run))
    out.emit(
        result,
        f"Applied {result['applied']} event(s); the projector is at inbox position {result['position']}"
        f" (policy {result['policy_version']}).",
    )
    return 0


def _cmd_policy(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    from xinyong_gateway.credit import policy_tools
    from xinyong_gateway.credit.in_force import PolicyInForce
    from xinyong_gateway.credit.policy import PolicyError, load_policy, policy_from

    if args.policy_command == "check":
        source = str(args.file or settings.policy_file or "the shipped default policy")
        try:
            checked = load_policy(args.file) if args.file else policy_from(settings.policy_file)
        except PolicyError as exc:
            if out.json:
                out.emit({"file": source, "valid": False, "errors": str(exc).splitlines()}, "")
            sys.stderr.write(f"xinyong-gateway: error: {exc}\n")
            return 1
        general = {
            "publicity": policy_tools.explain_publicity(checked),
            "score": policy_tools.explain_score(checked),
            "measures": policy_tools.explain_measures(checked),
            "red": policy_tools.explain_red(checked),
        }
        rules = [{"id": rule.id, "explanation": policy_tools.explain_rule(rule, checked)} for rule in checked.rules]
        human = [f"{source} is valid: policy {checked.version}, {len(rules)} rule(s).", *general.values(), "rules:"]
        human += [f"  {rule['explanation']}" for rule in rules]
        document = {"file": source, "version": checked.version, "valid": True, **general, "rules": rules}
        out.emit(document, "\n".join(human))
        return 0

    if args.policy_command == "apply":
        return _cmd_policy_apply(settings, args, out)

    if args.examples < 0:
        raise CliError("--examples must be 0 or more.")
    current, candidate = policy_from(settings.policy_file), load_policy(args.file)
    show_progress = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        sys.stderr.write(f"\rreplaying the inbox: {done} / {total} events")
        sys.stderr.flush()

    async def run(store: Store, master: MasterKey) -> policy_tools.DryRun:
        in_force = await PolicyInForce(store, current).refresh()  # a policy adopted with `policy apply` wins
        return await policy_tools.dry_run(
            store, master, in_force, candidate, examples=args.examples, progress=progress if show_progress else None
        )

    try:
        try:
            result = asyncio.run(_with_store(settings, run))
        finally:
            if show_progress:
                sys.stderr.write("\n")
    except KeyboardInterrupt:
        sys.stderr.write("xinyong-gateway: interrupted; nothing was written.\n")
        raise
    out.emit(policy_tools.diff_document(result), "\n".join(policy_tools.diff_lines(result)))
    return 0


def _cmd_policy_apply(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    from xinyong_gateway.credit.policy import load_policy
    from xinyong_gateway.credit.projector import Projector

    policy = load_policy(args.file)  # a clear error for a missing or invalid file
    text = Path(args.file).read_text(encoding="utf-8")  # adopted as written, comments and all
    show_progress = sys.stderr.isatty()

    async def run(store: Store, master: MasterKey) -> dict[str, Any]:
        total = await store.inbox_count()

        def progress(done: int) -> None:
            if show_progress:
                sys.stderr.write(f"\rreplaying the inbox under {policy.version}: {done} / {total} events")
                sys.stderr.flush()

        previous = await store.active_policy()
        replayed, changed = await Projector(store, master, policy).reproject(policy, text, progress=progress)
        return {
            "version": policy.version,
            "previous_version": previous[0] if previous else None,
            "events": replayed,
            "subjects_changed": changed,
            "history": [
                {"version": version, "adopted_at": _iso(from_micros(at)), "active": active}
                for version, at, active in await store.policy_history()
            ],
        }

    try:
        try:
            result = asyncio.run(_with_store(settings, run))
        finally:
            if show_progress:
                sys.stderr.write("\n")
    except ProjectionConflictError as exc:
        raise GatewayError(
            "The projector moved on while the policy was being applied, so nothing was written; run the command"
            " again (or stop the gateway's projector while applying)."
        ) from exc
    except KeyboardInterrupt:
        sys.stderr.write("xinyong-gateway: interrupted; nothing was written, the previous policy stays in force.\n")
        raise
    out.emit(
        result,
        f"Adopted policy {result['version']}: replayed {result['events']} event(s); {result['subjects_changed']}"
        " subject(s) changed list, grade or measures (each change is in the feed with the new version).",
    )
    return 0


def _cmd_subjects(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    from xinyong.subjects import Subject
    from xinyong_gateway.credit.report import report_lines, subject_report

    try:
        subject = Subject.model_validate({"id_type": args.id_type, "id": args.id})
    except ValidationError:
        raise CliError(f"That is not a valid {args.id_type.upper()}.") from None

    async def show(store: Store, master: MasterKey) -> dict[str, Any] | None:
        return await subject_report(store, master, subject, reveal=args.reveal, now=datetime.now(UTC))

    report = asyncio.run(_with_store(settings, show))
    if report is None:
        raise CliError("No credit file for this subject (nothing has been reported about it).")
    out.emit(report, "\n".join(report_lines(report)))
    return 0


def _cmd_import(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    import os
    import time
    from pathlib import Path

    from xinyong.rejects import RejectsFile
    from xinyong_gateway.errors import StoreUnavailableError
    from xinyong_gateway.importer import Importer, ImportProgress
    from xinyong_gateway.store import sqlite_path_from_url

    path = Path(args.file)
    rejects_path = Path(args.rejects) if args.rejects else path.with_name(path.name + ".rejected.ndjson")
    if not path.is_file():
        raise CliError(f"No such file: {path}.")
    if rejects_path.resolve() == path.resolve():
        raise CliError("--rejects must name another file than the input.")
    if not rejects_path.parent.is_dir():
        raise CliError(f"No directory {rejects_path.parent} for the rejects file.")
    if settings.database_url.startswith("sqlite:") and not sqlite_path_from_url(settings.database_url).exists():
        raise CliError(f"No database at {settings.database_url}; run `xinyong-gateway migrate` first.")
    if args.jobs is not None and args.jobs < 1:
        raise CliError("--jobs must be at least 1.")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    jobs = args.jobs or (1 if path.stat().st_size < 8 << 20 else min(cpus, 8))
    started = shown = time.monotonic()
    progress_shown = False

    def show(progress: ImportProgress) -> None:
        nonlocal shown, progress_shown
        now = time.monotonic()
        if now - shown < 0.25 and progress.bytes_read < progress.total_bytes:
            return
        shown, progress_shown = now, True
        percent = 100 * progress.bytes_read / progress.total_bytes if progress.total_bytes else 100.0
        sys.stderr.write(
            f"\r{percent:5.1f}%  {progress.lines:,} lines  {progress.lines / max(now - started, 1e-9):,.0f} lines/s"
            f"  accepted {progress.accepted:,}  duplicate {progress.duplicate:,}  rejected {progress.rejected:,} "
        )
        sys.stderr.flush()

    try:
        with path.open("rb", buffering=1 << 20) as stream, RejectsFile(rejects_path) as rejects:

            async def run(store: Store, master: MasterKey) -> ImportProgress:
                source = await store.get_source(args.source)
                if source is None:
                    raise CliError(f"No source with id {args.source!r}.")
                if source.status != "active":
                    raise CliError(f"Source {source.source_id} is disabled; its events cannot be imported.")
                return await Importer(store, master, source, body_limit=settings.body_limit, jobs=jobs).run(
                    stream,
                    total_bytes=os.fstat(stream.fileno()).st_size,
                    on_rejections=rejects.write,
                    on_progress=show if sys.stderr.isatty() else None,
                )

            result = asyncio.run(_with_store(settings, run))
    except StoreUnavailableError as exc:
        raise CliError(
            f"The import stopped: {exc} Lines committed before the failure stay stored; running the same import"
            " again is safe (they answer duplicate)."
        ) from exc
    except (GatewayError, OSError) as exc:
        raise CliError(str(exc)) from exc
    finally:
        if progress_shown:
            sys.stderr.write("\n")
    elapsed = time.monotonic() - started
    rejected_file = str(rejects_path) if result.rejected else None
    human = (
        f"Imported {path} for source {args.source}: {result.accepted:,} accepted, {result.duplicate:,} duplicate,"
        f" {result.rejected:,} rejected in {elapsed:.1f} s ({result.lines / max(elapsed, 1e-9):,.0f} lines/s)."
    )
    if rejected_file:
        human += f"\n  Rejected lines (number, problem, JSON Pointers): {rejected_file}"
    out.emit(
        {
            "accepted": result.accepted,
            "duplicate": result.duplicate,
            "rejected": result.rejected,
            "rejected_file": rejected_file,
            "elapsed_s": round(elapsed, 3),
        },
        human,
    )
    return 1 if result.rejected else 0


def _cmd_sources(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    now = datetime.now(UTC)
    action = args.sources_command
    if action == "add":
        name = args.name.strip()
        if not name:
            raise CliError("--name must not be empty.")
        uscc = validate_uscc(args.uscc) if args.uscc else None
        public_key = VerifyingKey.parse(args.public_key) if args.public_key else None

        async def add(store: Store, master: MasterKey) -> dict[str, Any]:
            record, secret = await add_source(
                store,
                master,
                kind=args.kind,
                name=name,
                uscc=uscc,
                public_key=public_key,
                rate_limit=args.rate,
                now=now,
            )
            result = _source_json(record)
            if secret is not None:
                result["secret"] = str(secret)
            if public_key is not None:
                result["public_key"] = str(public_key)
            return result

        result = asyncio.run(_with_store(settings, add))
        human = f"Registered source {result['source_id']} ({result['kind']}, {result['name']})."
        if "secret" in result:
            human += f"\n  secret: {result['secret']}\n  Give it to the sender now; it is not shown again."
        else:
            human += "\n  Webhooks must be signed (v1a) with the matching whsk_ signing key."
        out.emit(result, human)
        return 0

    if action == "list":
        records = asyncio.run(_with_store(settings, lambda store, _master: store.list_sources()))
        human = "\n".join(_human_source(r) for r in records) if records else "No sources yet."
        out.emit([_source_json(r) for r in records], human)
        return 0

    if action == "disable":
        record = asyncio.run(_with_store(settings, lambda store, _m: store.disable_source(args.source_id, now=now)))
        out.emit(_source_json(record), f"Disabled source {record.source_id}; its webhooks are refused from now on.")
        return 0

    if action == "rotate":
        public_key = VerifyingKey.parse(args.public_key) if args.public_key else None

        async def rotate(store: Store, master: MasterKey) -> dict[str, Any]:
            record, secret = await rotate_source(
                store, master, args.source_id, public_key=public_key, grace=args.grace, now=now
            )
            result = _source_json(record)
            result["previous_keys_expire_at"] = _iso(now + args.grace)
            if secret is not None:
                result["secret"] = str(secret)
            return result

        result = asyncio.run(_with_store(settings, rotate))
        human = (
            f"Rotated source {result['source_id']}; previous keys stay valid until {result['previous_keys_expire_at']}."
        )
        if "secret" in result:
            human += f"\n  new secret: {result['secret']}\n  Give it to the sender now; it is not shown again."
        out.emit(result, human)
        return 0
    raise CliError(f"Unknown sources action {action!r}.")


def _key_json(record: ApiKeyRecord) -> dict[str, Any]:
    return {
        "key_id": record.key_id,
        "name": record.name,
        "scopes": list(record.scopes),
        "rate_limit": record.rate_limit,
        "status": record.status,
        "created_at": _iso(record.created_at),
        "revoked_at": _iso(record.revoked_at),
    }


def _human_key(record: ApiKeyRecord) -> str:
    rate = f"  rate limit {record.rate_limit:g}/s" if record.rate_limit else ""
    revoked = f"  revoked {_iso(record.revoked_at)}" if record.revoked_at else ""
    return f"{record.key_id}  {record.status:<7}  {','.join(record.scopes):<14}  {record.name}{rate}{revoked}"


def _cmd_keys(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    from xinyong_gateway.access import add_api_key

    now = datetime.now(UTC)
    action = args.keys_command
    if action == "add":
        name = args.name.strip()
        if not name:
            raise CliError("--name must not be empty.")

        async def add(store: Store, master: MasterKey) -> dict[str, Any]:
            issued = await add_api_key(store, master, name=name, scopes=args.scopes, rate_limit=args.rate, now=now)
            return {**_key_json(issued.record), "api_key": issued.api_key, "lookup_secret": issued.lookup_secret}

        result = asyncio.run(_with_store(settings, add))
        out.emit(
            result,
            f"Issued API key {result['key_id']} ({result['name']}; scopes {', '.join(result['scopes'])}).\n"
            f"  api key:       {result['api_key']}\n"
            f"  lookup secret: {result['lookup_secret']}   (the change feed's RIC pseudonyms: xinyong.ric_pseudonym)\n"
            "  Give both to the marketplace now; neither is shown again.",
        )
        return 0

    if action == "list":
        records = asyncio.run(_with_store(settings, lambda store, _master: store.list_api_keys()))
        human = "\n".join(_human_key(r) for r in records) if records else "No API keys yet."
        out.emit([_key_json(r) for r in records], human)
        return 0

    if action == "revoke":
        record = asyncio.run(_with_store(settings, lambda store, _m: store.revoke_api_key(args.key_id, now=now)))
        out.emit(
            _key_json(record),
            f"Revoked API key {record.key_id}; running gateways refuse it within their refresh interval (2 s by"
            " default).",
        )
        return 0
    raise CliError(f"Unknown keys action {action!r}.")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Output(args.json)
    try:
        overrides: dict[str, Any] = {}
        if args.db:
            overrides["database_url"] = args.db
        if args.command == "serve":
            if args.host:
                overrides["host"] = args.host
            if args.port is not None:
                overrides["port"] = args.port
            if args.log_format:
                overrides["log_format"] = args.log_format
            if args.no_projector:
                overrides["projector"] = False
        if getattr(args, "policy", None):
            overrides["policy_file"] = args.policy
        try:
            settings = GatewaySettings(**overrides)
        except ValidationError as exc:
            fields = ", ".join(".".join(str(p) for p in err["loc"]) for err in exc.errors())
            raise CliError(f"Invalid setting(s): {fields}.") from exc

        if args.command == "migrate":
            return _cmd_migrate(settings, out)
        if args.command == "serve":
            return _cmd_serve(settings, args)
        if args.command == "sources":
            return _cmd_sources(settings, args, out)
        if args.command == "keys":
            return _cmd_keys(settings, args, out)
        if args.command == "project":
            return _cmd_project(settings, args, out)
        if args.command == "import":
            return _cmd_import(settings, args, out)
        if args.command == "subjects":
            return _cmd_subjects(settings, args, out)
        if args.command == "policy":
            return _cmd_policy(settings, args, out)
        if args.command == "master-key":
            key = MasterKey.generate_text()
            out.emit({"master_key": key}, f"{key}\n  export XINYONG_MASTER_KEY=... and keep a copy safe.")
            return 0
        raise CliError(f"Unknown command {args.command!r}.")
    except CliError as exc:
        sys.stderr.write(f"xinyong-gateway: error: {exc}\n")
        return 2
    except (GatewayError, XinyongError, ValueError, OSError) as exc:
        sys.stderr.write(f"xinyong-gateway: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130
