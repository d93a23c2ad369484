"""The design lives in the repository and stays true: ``docs/wire-contract.md`` lists exactly the SDK's event types,
with the kinds of source that may send each and their required and optional fields, and exactly the problem types,
with the status and title the gateway answers them with; the README links the docs, not a file outside the
repository."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from xinyong import problems
from xinyong.events import ALLOWED_EVENT_TYPES, EVENT_TYPES, SOURCE_KINDS

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / "docs" / "wire-contract.md"


def table_after(heading: str) -> list[list[str]]:
    """The cells of the first Markdown table under ``heading`` (its header and separator rows left out)."""
    text = CONTRACT.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    rows: list[list[str]] = []
    for line in text[start:].splitlines()[1:]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    return rows[2:]


def field_names(cell: str) -> list[str]:
    """The backticked names of a cell, leaving out what is in parentheses (enumerated values)."""
    while "(" in cell:
        cell = re.sub(r"\([^()]*\)", "", cell)
    return re.findall(r"`([^`]+)`", cell)


def data_model(event_type: str) -> type[BaseModel]:
    annotation: Any = EVENT_TYPES[event_type].model_fields["data"].annotation
    assert isinstance(annotation, type) and issubclass(annotation, BaseModel)
    return annotation


def test_the_event_catalogue_lists_exactly_the_sdks_event_types_with_their_senders_and_fields() -> None:
    rows = table_after("## Event catalogue")
    documented = {field_names(row[0])[0]: row for row in rows}
    assert list(documented) == list(EVENT_TYPES)  # every type, once, in the SDK's order
    for event_type, (_, sent_by, required, optional) in documented.items():
        kinds = [kind for kind in SOURCE_KINDS if event_type in ALLOWED_EVENT_TYPES[kind]]
        assert [kind.strip() for kind in sent_by.split(",")] == kinds, event_type
        fields = data_model(event_type).model_fields
        assert sorted(field_names(required)) == sorted(n for n, f in fields.items() if f.is_required()), event_type
        assert sorted(field_names(optional)) == sorted(n for n, f in fields.items() if not f.is_required()), event_type


def gateway_problems_module() -> ModuleType:
    """Where the gateway keeps its problem catalogue."""
    return importlib.import_module("xinyong_gateway.web.problems")


def test_the_problem_types_are_exactly_the_sdks_with_the_gateways_status_and_title() -> None:
    rows = table_after("## Problem types")
    documented = {problems.PROBLEM_BASE + field_names(row[0])[0]: (int(row[1]), row[2]) for row in rows}
    known = {getattr(problems, name) for name in problems.__all__ if name != "PROBLEM_BASE"}
    assert set(documented) == known
    problem_error = gateway_problems_module().ProblemError
    for type_uri, (status, title) in documented.items():
        answered = problem_error(type_uri)
        assert (answered.status, answered.title) == (status, title), type_uri


def test_the_readme_links_the_docs_and_nothing_outside_the_repository() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "../shared" not in readme and "](../" not in readme
    assert "(docs/architecture.md)" in readme and "(docs/wire-contract.md)" in readme
    for document in (ROOT / "docs").glob("*.md"):
        text = document.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if not target.startswith(("http://", "https://")):
                assert (document.parent / target).resolve().exists(), f"{document.name} links {target}"
