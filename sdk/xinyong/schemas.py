"""Generate the JSON Schemas (draft 2020-12) of the wire models, checked in under ``schemas/``.

Integrators in any language validate against these files; the models are the single source, so
the files are regenerated, never edited::

    python -m xinyong.schemas schemas           # write them (``make schemas``)
    python -m xinyong.schemas --check schemas   # exit 1 if any is stale, missing or extra

Files: ``events/<type>.json`` for each event type, ``event.json`` (any event), ``subject.json``,
``requests/screening.json``, ``responses/webhook-ack.json``, ``responses/problem.json``,
``responses/screening.json``, ``responses/list-changes.json``, ``notifications/list-changed.json`` (the body a
subscription's receiver gets), ``requests/attestation.json``, ``responses/attestation.json``,
``attestation-claims.json`` (the payload of the signed token), ``responses/jwks.json``, and ``openapi.json`` (the
whole HTTP API, OpenAPI 3.1, :mod:`xinyong.openapi`; the gateway serves the same document at ``/openapi.json``). The
generator owns every ``*.json`` under ``events/``, ``notifications/``, ``requests/`` and ``responses/`` (stale ones
are removed) and the top-level files it writes; other files in the directory are left alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from xinyong.attestations import Attestation, AttestationRequest, AttestationResponse, Jwks
from xinyong.events import EVENT_ADAPTER, EVENT_TYPES
from xinyong.notifications import ListChangedNotification
from xinyong.openapi import build_openapi
from xinyong.queries import ListChangesPage, ScreeningRequest, ScreeningResponse
from xinyong.responses import Problem, WebhookAck
from xinyong.subjects import Subject

__all__ = [
    "JSON_SCHEMA_DIALECT",
    "OPENAPI_FILE",
    "SCHEMA_ID_PREFIX",
    "build_files",
    "build_schemas",
    "check",
    "main",
    "render",
]

JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
#: ``$id`` of a schema file is this prefix and its path without ``.json``.
SCHEMA_ID_PREFIX: Final = "urn:xinyong:schema:v1:"

#: The OpenAPI document's file, beside the JSON Schemas.
OPENAPI_FILE: Final = "openapi.json"

_OWNED_DIRECTORIES: Final = ("events", "notifications", "requests", "responses")


def _document(path: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": SCHEMA_ID_PREFIX + path.removesuffix(".json"), **schema}


def build_schemas() -> dict[str, dict[str, Any]]:
    """Every schema file: relative path (``/``-separated) → JSON Schema document."""
    paths_and_schemas: list[tuple[str, dict[str, Any]]] = [
        (f"events/{event_type}.json", model.model_json_schema()) for event_type, model in EVENT_TYPES.items()
    ]
    paths_and_schemas += [
        ("event.json", EVENT_ADAPTER.json_schema()),
        ("subject.json", Subject.model_json_schema()),
        ("requests/screening.json", ScreeningRequest.model_json_schema()),
        ("responses/webhook-ack.json", WebhookAck.model_json_schema()),
        ("responses/problem.json", Problem.model_json_schema()),
        ("responses/screening.json", ScreeningResponse.model_json_schema()),
        ("responses/list-changes.json", ListChangesPage.model_json_schema()),
        ("notifications/list-changed.json", ListChangedNotification.model_json_schema()),
        ("requests/attestation.json", AttestationRequest.model_json_schema()),
        ("responses/attestation.json", AttestationResponse.model_json_schema()),
        ("responses/jwks.json", Jwks.model_json_schema()),
        ("attestation-claims.json", Attestation.model_json_schema()),
    ]
    return {path: _document(path, schema) for path, schema in paths_and_schemas}


def build_files() -> dict[str, dict[str, Any]]:
    """Every generated file: the JSON Schemas (:func:`build_schemas`) and ``openapi.json``."""
    return {**build_schemas(), OPENAPI_FILE: build_openapi()}


def render(schema: dict[str, Any]) -> str:
    """The exact text of a schema file: stable key order, two-space indent, UTF-8, final newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def _owned_files_on_disk(directory: Path) -> set[str]:
    return {
        f"{sub}/{file.name}"
        for sub in _OWNED_DIRECTORIES
        if (directory / sub).is_dir()
        for file in (directory / sub).glob("*.json")
    }


def check(directory: Path) -> list[str]:
    """What differs between the files under ``directory`` and the models: one line per file, sorted.

    An empty list means the schemas are up to date.
    """
    expected = {path: render(schema) for path, schema in build_files().items()}
    problems: list[str] = []
    for path, text in expected.items():
        file = directory.joinpath(*path.split("/"))
        if not file.is_file():
            problems.append(f"missing: {file}")
        elif file.read_text(encoding="utf-8") != text:
            problems.append(f"stale: {file}")
    problems += [
        f"extra: {directory.joinpath(*path.split('/'))}" for path in _owned_files_on_disk(directory) - expected.keys()
    ]
    return sorted(problems)


def _write(directory: Path) -> None:
    expected = {path: render(schema) for path, schema in build_files().items()}
    for path, text in expected.items():
        file = directory.joinpath(*path.split("/"))
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text, encoding="utf-8", newline="\n")
        sys.stdout.write(f"wrote {file}\n")
    for path in sorted(_owned_files_on_disk(directory) - expected.keys()):
        file = directory.joinpath(*path.split("/"))
        file.unlink()
        sys.stdout.write(f"removed {file}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Write the schemas to a directory (default ``schemas``), or with ``--check`` verify them."""
    parser = argparse.ArgumentParser(
        prog="python -m xinyong.schemas",
        description="Generate the JSON Schemas of the xinyong wire models and the OpenAPI document.",
    )
    parser.add_argument("directory", nargs="?", default="schemas", type=Path, help="default: schemas")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if any file is stale, missing or extra"
    )
    args = parser.parse_args(argv)
    directory: Path = args.directory
    if not args.check:
        _write(directory)
        return 0
    problems = check(directory)
    if not problems:
        sys.stdout.write(f"{directory}: up to date\n")
        return 0
    sys.stdout.write("".join(f"{problem}\n" for problem in problems))
    sys.stderr.write("the JSON Schemas are out of date: run `make schemas`\n")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
