"""The rejects file of a bulk run: one JSON line per refused input line, shared by ``xinyong send`` (a sender's
upload) and ``xinyong-gateway import`` (an operator's load), so both write the same format. Each command has a
default file name of its own (:func:`default_rejects_path`), so a send and an import of one file never overwrite
each other's.

Each rejection says where (line number) and why (problem type, detail, JSON Pointers), never what the line said: a
line may hold a resident identity number.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol, Self

__all__ = ["RejectsFile", "default_rejects_path"]


def default_rejects_path(path: Path, command: str) -> Path:
    """Where ``command`` (``send``, ``import``) describes the rejected lines of ``path`` unless told:
    ``deliveries.ndjson`` → ``deliveries.ndjson.send-rejected.ndjson``."""
    return path.with_name(f"{path.name}.{command}-rejected.ndjson")


class _Rejection(Protocol):
    def to_json(self) -> dict[str, Any]: ...


class RejectsFile:
    """The rejected lines of a run as JSON lines, written as they are found.

    The file is created (or truncated) at the first rejection. A run that ends normally with none removes a
    file left at that path by an earlier run, so the file always describes the last complete run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._file: IO[str] | None = None

    def write(self, rejections: Iterable[_Rejection]) -> None:
        if self._file is None:
            self._file = self.path.open("w", encoding="utf-8")
        for rejection in rejections:
            self._file.write(json.dumps(rejection.to_json(), ensure_ascii=False) + "\n")
            self.count += 1

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._file is not None:
            self._file.close()
        elif exc_type is None:
            self.path.unlink(missing_ok=True)
