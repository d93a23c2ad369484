"""``xinyong screen FILE --out FILE``: screen a spreadsheet of merchants (CSV) and write it back with their status.

The input is comma-separated with a header naming the columns ``id_type`` and ``id`` (``name`` optional; any other
column is kept). It is read as UTF-8 (with or without a byte-order mark), else as GB18030, which spreadsheets
exported in China often use (or as ``--encoding`` says), and the output is written in the encoding it was read in.
The output is the input, columns and order kept, plus ``list``, ``grade``, ``score``, ``measures``, ``reasons``
(codes joined with ``;``) and ``error``. A row with a wrong ``id_type``, an invalid id, a bad name or a missing or
extra field is a bad row: not sent, its ``error`` filled, its line named on stderr; it never stops the run.

An input column named like an output column is refused (one sentence, before anything is screened) rather than
overwritten, except in a results file of ``xinyong screen`` itself, whose last six columns are the output columns:
screening it again refreshes them.

Valid rows are screened by the gateway (``POST /v1/screenings``, 1000 a request, a few requests at once), or with
``--mirror FILE`` from a list mirror (``xinyong mirror sync``) without the network. The output file is written
only when the screening is complete (to a temporary file renamed into place), with mode 0600: like the input, it
may hold resident ids and persons' names. That temporary file is created first, before the input is read, so an
output that cannot be written (``--out nodir/x.csv``) is said at once, not after the screening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

from xinyong.client import Client, check_subject
from xinyong.errors import InvalidIdentifierError, XinyongError
from xinyong.queries import MAX_SCREENING_SUBJECTS, SubjectStatus
from xinyong.subjects import Subject

from ._common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_BAD,
    PARSER_OPTIONS,
    CliError,
    Progress,
    add_api_key_option,
    add_lookup_secret_option,
    add_max_age_option,
    add_url_option,
    api_key,
    bar,
    gateway_failure,
    gateway_url,
    open_mirror,
    plural,
    warn,
)

__all__ = ["OUTPUT_COLUMNS", "add_parser"]

OUTPUT_COLUMNS: Final = ("list", "grade", "score", "measures", "reasons", "error")
_CONCURRENT_BATCHES: Final = 4

_EPILOG = """\
examples:
  $ export XINYONG_URL=https://credit.example.gov.cn XINYONG_API_KEY=xyk_...   (or --api-key-file FILE)
  $ xinyong screen merchants.csv --out results.csv
  $ xinyong screen merchants.csv --out results.csv --mirror lists.db   (offline: see `xinyong mirror sync`)

merchants.csv (a header is required; other columns are kept as they are):
  id_type,id,name
  uscc,91320706MA1Y2N6Q47,连云港示例网店有限公司
  ric,320706198605174597,王五

results.csv: the same columns, then list,grade,score,measures,reasons,error, e.g.
  uscc,91320706MA1Y2N6Q47,连云港示例网店有限公司,black,D,45,refuse_onboarding;close_store;...,LISTING_COUNTERFEIT;LISTING_VIOLATION,

The input is read as UTF-8 (with or without BOM), else GB18030; the output is written in the same encoding.
Bad rows (invalid id, wrong id_type, missing column) are not sent: their error column says why and stderr
names their line.

exit status: 0 every row screened, 1 some rows were bad, 2 the screening could not run.
"""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "screen",
        help="screen a CSV of merchants and write their list, grade and measures",
        description="Screen every merchant of a CSV file and write the file back with its credit status.",
        epilog=_EPILOG,
        **PARSER_OPTIONS,
    )
    parser.add_argument("file", metavar="FILE", help="the CSV to screen (columns id_type,id[,name], header required)")
    parser.add_argument("--out", required=True, metavar="FILE", help="where to write the results (- for stdout)")
    parser.add_argument(
        "--encoding", metavar="NAME", help="the input's encoding (default: UTF-8 with or without BOM, else GB18030)"
    )
    parser.add_argument(
        "--mirror", metavar="MIRROR", help="screen from this list mirror file instead of asking the gateway"
    )
    add_max_age_option(parser)
    add_url_option(parser)
    add_api_key_option(parser)
    add_lookup_secret_option(parser)
    parser.set_defaults(handler=run)


# -- the spreadsheet --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Row:
    line: int
    """The line the row starts on (the header is line 1)."""
    fields: list[str]
    subject: Subject | None = None
    error: str | None = None


@dataclass(slots=True)
class Sheet:
    header: list[str]
    rows: list[Row]
    encoding: str


def decode(data: bytes, encoding: str | None, name: str) -> tuple[str, str]:
    """The text of the file and the encoding to write the output in."""
    if encoding:
        try:
            return data.decode(encoding), encoding
        except LookupError:
            raise CliError(f"Unknown encoding {encoding!r}.") from None
        except UnicodeDecodeError as exc:
            raise CliError(f"{name} is not valid {encoding} (byte {exc.start}).") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    else:
        return text, "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8"
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError:
        raise CliError(f"{name} is neither UTF-8 nor GB18030 text; say which encoding it is with --encoding.") from None


def _output_positions(header: list[str]) -> dict[str, int] | None:
    """Where a results file of ``xinyong screen`` (its last six columns the output columns) has them; None for any
    other header. Raises :class:`CliError` for a header that has some output column elsewhere: it would be
    overwritten."""
    lowered = [column.strip().lower() for column in header]
    width = len(OUTPUT_COLUMNS)
    if len(lowered) > width and tuple(lowered[-width:]) == OUTPUT_COLUMNS:
        return {column: len(header) - width + n for n, column in enumerate(OUTPUT_COLUMNS)}
    taken = [column for column in OUTPUT_COLUMNS if column in lowered]
    if taken:
        names = " and ".join(", ".join(taken).rsplit(", ", 1))
        its = "a column" if len(taken) == 1 else "columns"
        raise CliError(
            f"The input has {its} named {names}, where xinyong screen writes its results"
            f" ({', '.join(OUTPUT_COLUMNS)}): rename {'it' if len(taken) == 1 else 'them'}, so nothing is overwritten."
        )
    return None


def read_sheet(text: str, name: str, encoding: str) -> Sheet:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: list[Row] = []
    line = 1
    for fields in reader:
        start, line = line, reader.line_num + 1
        if not any(field.strip() for field in fields):
            continue  # blank lines are not rows
        if header is None:
            header = fields
            continue
        rows.append(Row(start, fields))
    if header is None:
        raise CliError(f"{name} is empty; it needs a header line naming the columns id_type and id.")
    columns = [column.strip().lower() for column in header]
    missing = [column for column in ("id_type", "id") if column not in columns]
    if missing:
        raise CliError(
            f"The header of {name} has no column {' and '.join(missing)}; the first line must name the columns"
            " id_type, id and optionally name."
        )
    _output_positions(header)  # refuse a header whose columns the results would overwrite, before any work
    id_type_at, id_at = columns.index("id_type"), columns.index("id")
    name_at = columns.index("name") if "name" in columns else None
    for row in rows:
        row.subject, row.error = _check_row(row.fields, len(header), id_type_at, id_at, name_at)
    return Sheet(header, rows, encoding)


def _check_row(
    fields: list[str], width: int, id_type_at: int, id_at: int, name_at: int | None
) -> tuple[Subject | None, str | None]:
    if len(fields) < width:
        return None, f"missing column: the row has {len(fields)} fields, the header {width}"
    if len(fields) > width:
        return None, f"extra column: the row has {len(fields)} fields, the header {width}"
    id_type = fields[id_type_at].strip().lower()
    if id_type not in ("uscc", "ric"):
        return None, "id_type must be uscc or ric"
    if not fields[id_at].strip():
        return None, "id is empty"
    item: dict[str, str] = {"id_type": id_type, "id": fields[id_at]}
    if name_at is not None and fields[name_at].strip():
        item["name"] = fields[name_at].strip()
    try:
        return check_subject(item), None
    except InvalidIdentifierError as exc:  # "/id: RIC check digit is wrong": names the field, never the value
        return None, str(exc).replace("/", "", 1)


def _columns(status: SubjectStatus) -> dict[str, str]:
    codes = list(dict.fromkeys(reason.code for reason in status.reasons))
    return {
        "list": status.list,
        "grade": status.grade or "",
        "score": "" if status.score is None else str(status.score),
        "measures": ";".join(status.measures),
        "reasons": ";".join(codes),
        "error": "",
    }


def write_sheet(sheet: Sheet, statuses: dict[int, SubjectStatus], out: TextIO) -> None:
    header = list(sheet.header)
    positions = _output_positions(header)  # a results file screened again: its output columns are refreshed
    if positions is None:
        positions = {column: len(header) + n for n, column in enumerate(OUTPUT_COLUMNS)}
        header.extend(OUTPUT_COLUMNS)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for index, row in enumerate(sheet.rows):
        values = dict.fromkeys(OUTPUT_COLUMNS, "")
        if row.error is not None:
            values["error"] = f"line {row.line}: {row.error}"
        else:
            values.update(_columns(statuses[index]))
        fields = (row.fields + [""] * len(header))[: len(header)]
        for column, position in positions.items():
            fields[position] = values[column]
        writer.writerow(fields)


class _Output:
    """Where the results go: stdout, or a file written in full or not at all. For a file, a temporary file beside
    it is created at once (mode 0600), so a directory that is missing or not writable is known before any work;
    :meth:`write` fills it and renames it into place, :meth:`discard` removes it."""

    def __init__(self, out: str) -> None:
        self.name = out
        self._temporary: str | None = None
        self._handle: int | None = None
        if out == "-":
            return
        target = Path(out)
        if target.is_dir():
            raise CliError(f"Cannot write the results to {out}: it is a directory.")
        try:
            self._handle, self._temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        except OSError as exc:
            reason = "no such directory" if isinstance(exc, FileNotFoundError) else (exc.strerror or str(exc)).lower()
            raise CliError(f"Cannot write the results to {out} ({reason}); nothing was screened.") from None

    def write(self, sheet: Sheet, statuses: dict[int, SubjectStatus]) -> None:
        if self._temporary is None or self._handle is None:
            write_sheet(sheet, statuses, sys.stdout)
            sys.stdout.flush()
            return
        handle, self._handle = self._handle, None
        try:
            with os.fdopen(handle, "w", encoding=sheet.encoding, newline="") as stream:
                write_sheet(sheet, statuses, stream)
            os.replace(self._temporary, self.name)
            self._temporary = None
        except OSError as exc:
            raise CliError(f"Cannot write {self.name}: {exc.strerror or exc}.") from None

    def discard(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                os.close(self._handle)
            self._handle = None
        if self._temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._temporary)
            self._temporary = None


# -- screening ------------------------------------------------------------------------------------------------


async def _screen_online(
    url: str, key: str, subjects: list[tuple[int, Subject]], on_done: Callable[[int], None]
) -> dict[int, SubjectStatus]:
    statuses: dict[int, SubjectStatus] = {}
    limit = asyncio.Semaphore(_CONCURRENT_BATCHES)

    async def one(client: Client, batch: list[tuple[int, Subject]]) -> None:
        async with limit:
            results = await client.screen([subject for _, subject in batch])
        statuses.update((index, status) for (index, _), status in zip(batch, results, strict=True))
        on_done(len(batch))

    async with Client(url, key) as client:
        try:
            async with asyncio.TaskGroup() as group:
                for start in range(0, len(subjects), MAX_SCREENING_SUBJECTS):
                    group.create_task(one(client, subjects[start : start + MAX_SCREENING_SUBJECTS]))
        except* XinyongError as failures:
            raise gateway_failure(failures.exceptions[0], url) from None  # type: ignore[arg-type]
    return statuses


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if args.out != "-" and Path(args.out).resolve() == path.resolve():
        raise CliError("--out must name another file than the input.")
    output = _Output(args.out)
    try:
        return _run(args, path, output)
    finally:
        output.discard()


def _run(args: argparse.Namespace, path: Path, output: _Output) -> int:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CliError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    text, encoding = decode(data, args.encoding, str(path))
    sheet = read_sheet(text, str(path), encoding)
    for row in sheet.rows:
        if row.error is not None:
            warn("screen", f"line {row.line}: {row.error} (not screened)")
    subjects = [(index, row.subject) for index, row in enumerate(sheet.rows) if row.subject is not None]
    progress = Progress()
    screened = 0

    def on_done(count: int) -> None:
        nonlocal screened
        screened += count
        progress.show(f"{bar(screened, len(subjects))}  {screened:,}/{len(subjects):,} rows", force=True)

    try:
        if args.mirror:
            statuses = _screen_offline(args, subjects, on_done)
        else:
            statuses = asyncio.run(_screen_online(gateway_url(args), api_key(args), subjects, on_done))
    except KeyboardInterrupt:
        progress.done()
        where = "" if args.out == "-" else f" to {args.out}"
        raise CliError(
            f"Interrupted after screening {screened:,} of {plural(len(subjects), 'row')}; nothing was written{where}"
            " (results are written only when complete), and running the same command again is safe.",
            EXIT_INTERRUPTED,
        ) from None
    finally:
        progress.done()
    output.write(sheet, statuses)
    bad = len(sheet.rows) - len(subjects)
    lists = {name: 0 for name in ("black", "watch", "red", "none")}
    for status in statuses.values():
        lists[status.list] += 1
    counts = ", ".join(f"{count:,} {name}" for name, count in lists.items())
    where = "stdout" if args.out == "-" else args.out
    summary = (
        f"screened {plural(len(subjects), 'row')} ({counts}); {plural(bad, 'bad row')} not screened; results in {where}"
    )
    warn("screen", summary)
    return EXIT_SOME_BAD if bad else EXIT_OK


def _screen_offline(
    args: argparse.Namespace, subjects: list[tuple[int, Subject]], on_done: Callable[[int], None]
) -> dict[int, SubjectStatus]:
    if not Path(args.mirror).is_file():
        raise CliError(f"No list mirror at {args.mirror}; create it with `xinyong mirror sync {args.mirror}`.")
    statuses: dict[int, SubjectStatus] = {}
    with open_mirror(args.mirror, args, None, max_age=args.max_age) as mirror:
        freshness = mirror.freshness
        if freshness.synced_at is None:
            raise CliError(f"The list mirror {args.mirror} has never completed a sync; run `xinyong mirror sync`.")
        if freshness.stale:
            warn(
                "screen",
                f"warning: the list mirror {args.mirror} is stale (last sync {freshness.synced_at:%Y-%m-%d %H:%M} UTC);"
                " a listing since then does not show.",
            )
        try:
            for done, (index, subject) in enumerate(subjects, 1):
                statuses[index] = mirror.status(subject)
                if done % 1000 == 0 or done == len(subjects):
                    on_done(1000 if done % 1000 == 0 else done % 1000)
        except XinyongError as exc:
            raise CliError(str(exc)) from exc
    return statuses
