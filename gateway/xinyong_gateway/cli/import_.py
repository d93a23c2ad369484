"""``xinyong-gateway import FILE --source ID``: load historical events from an NDJSON file into the inbox, checked as
ingest checks them and stored exactly once (the pipeline is ``cli.importer``). Progress goes to stderr
(``_common.Progress``); Ctrl-C says how many lines were committed and that running the import again is safe. Each
run is recorded in the audit log with its counts, also one that stops part-way (lines committed before it stay
stored)."""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path
from typing import Any

from xinyong.rejects import RejectsFile, default_rejects_path
from xinyong_gateway.cli._common import (
    CliError,
    Output,
    Progress,
    Resources,
    add_command,
    open_resources,
    os_error_sentence,
    plural,
    run_until_interrupted,
)
from xinyong_gateway.cli.importer import Importer, ImportProgress
from xinyong_gateway.errors import GatewayError, StoreUnavailableError
from xinyong_gateway.settings import GatewaySettings

__all__ = ["add_parser"]

_DESCRIPTION = """Load historical events from an NDJSON file into the inbox, checked as ingest checks a webhook body and
stored exactly once.

Each line is one event envelope {type, timestamp, data}, UTF-8; empty lines are skipped. No signatures:
the source must exist and be active, and each event must be one it may send. A line's webhook id is the
one `xinyong send` gives it: its top-level "id" member when present (taken out; the rest is stored as
compact JSON), else line- and 32 hex digits of a SHA-256 of the line with persons' ids and names left
out (the line stored byte for byte; README, "The webhook id of a line"). Importing the same file again,
or a file a sender already sent, stores nothing new. A file whose first line is not JSON is refused
before anything is stored. Rejected lines are listed in the rejects file by number, problem type and
JSON Pointers, never by content. Progress goes to stderr; Ctrl-C stops it (exit 130), and running the
same import again is safe. Exit status: 0 all lines accepted or duplicate, 1 some rejected, 2 the
import could not run."""


def add_parser(commands: Any) -> None:
    bulk = add_command(
        commands,
        "import",
        "load historical events from an NDJSON file into the inbox",
        "xinyong-gateway import events.ndjson --source src_...",
        description=_DESCRIPTION,
    )
    bulk.add_argument("file", metavar="FILE", help="NDJSON file: one event envelope per line")
    bulk.add_argument("--source", required=True, metavar="ID", help="the active source the events came from")
    bulk.add_argument(
        "--rejects", metavar="FILE", help="where to describe rejected lines (default: FILE.import-rejected.ndjson)"
    )
    bulk.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="processes checking lines (default: one per CPU, at most 8; 1 for files under 8 MiB)",
    )
    bulk.set_defaults(handler=_import)


def _counts(progress: ImportProgress) -> str:
    return f"{progress.accepted:,} accepted, {progress.duplicate:,} duplicate, {progress.rejected:,} rejected"


def _import(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    path = Path(args.file)
    rejects_path = Path(args.rejects) if args.rejects else default_rejects_path(path, "import")
    if not path.is_file():
        raise CliError(f"No such file: {path}.")
    if rejects_path.resolve() == path.resolve():
        raise CliError("--rejects must name another file than the input.")
    if not rejects_path.parent.is_dir():
        raise CliError(f"No directory {rejects_path.parent} for the rejects file.")
    if args.jobs is not None and args.jobs < 1:
        raise CliError("--jobs must be at least 1.")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    jobs = args.jobs or (1 if path.stat().st_size < 8 << 20 else min(cpus, 8))
    started = time.monotonic()
    display = Progress("import", settings.progress_interval)
    settled = ImportProgress()  # what the last chunk's commit left: the counts an interruption reports

    def show(progress: ImportProgress) -> None:
        nonlocal settled
        settled = progress
        elapsed = max(time.monotonic() - started, 1e-9)
        percent = 100 * progress.bytes_read / progress.total_bytes if progress.total_bytes else 100.0
        display.show(
            f"{percent:5.1f}%  {plural(progress.lines, 'line')}  {progress.lines / elapsed:,.0f} lines/s  "
            + _counts(progress)
        )

    def interrupted() -> str:
        return (
            f"Interrupted after {plural(settled.lines, 'line')} of {path} were committed ({_counts(settled)}); lines"
            " being committed then may or may not be stored, and running the same import again is safe (stored"
            " lines answer duplicate)."
        )

    try:
        with path.open("rb", buffering=1 << 20) as stream, RejectsFile(rejects_path) as rejects:

            async def run() -> ImportProgress:
                async with open_resources(settings) as opened:
                    source = await opened.store.get_source(args.source)
                    if source is None:
                        raise CliError(f"No source with id {args.source!r}.")
                    if source.status != "active":
                        raise CliError(f"Source {source.source_id} is disabled; its events cannot be imported.")
                    importer = Importer(opened.store, opened.master, source, body_limit=settings.body_limit, jobs=jobs)
                    try:
                        result = await importer.run(
                            stream,
                            total_bytes=os.fstat(stream.fileno()).st_size,
                            on_rejections=rejects.write,
                            on_progress=show,
                        )
                    except BaseException:  # a failed commit, Ctrl-C: what was committed before it is stored
                        with contextlib.suppress(Exception):
                            await _record(opened, path, source.source_id, settled, "stopped")
                        raise
                    await _record(opened, path, source.source_id, result, "completed")
                    return result

            result = run_until_interrupted(run(), interrupted)
    except StoreUnavailableError as exc:
        raise CliError(
            f"The import stopped: {exc} Lines committed before the failure stay stored; running the same import"
            " again is safe (they answer duplicate)."
        ) from exc
    except GatewayError as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:  # reading the file, writing the rejects
        raise CliError(os_error_sentence(exc)) from exc
    finally:
        display.close()
    elapsed = time.monotonic() - started
    rejected_file = str(rejects_path) if result.rejected else None
    human = (
        f"Imported {path} for source {args.source}: {_counts(result)} in {elapsed:.1f} s"
        f" ({result.lines / max(elapsed, 1e-9):,.0f} lines/s)."
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


async def _record(opened: Resources, path: Path, source_id: str, progress: ImportProgress, outcome: str) -> None:
    """The audit log's entry of an import: the file's name, and the lines settled (all of them, or up to a stop)."""
    details = {
        "file": path.name,
        "outcome": outcome,
        "accepted": progress.accepted,
        "duplicate": progress.duplicate,
        "rejected": progress.rejected,
    }
    await opened.audit("import", source_id, details)
