"""Streaming readers: a dataset is read a line at a time, never whole, so memory stays flat
whatever its size. Each yields Records, numbered by the line of the file they start on.

Lines are decoded one by one (not through a TextIOWrapper) so that bad UTF-8 is reported
with its line, and the rest of the file still imports.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from catalog.imports.rows import COLUMNS, DatasetError, Problem, check_columns

#: A JSON array is parsed whole (JSON Lines stream): past this size, send JSON Lines.
JSON_ARRAY_MAX_BYTES = 32 * 1024 * 1024


@dataclass
class Record:
    line: int
    values: dict[str, Any] | None = None
    problems: list[Problem] = field(default_factory=list)


class Position:
    """How far a reader got: the last line read and the bytes consumed (for progress)."""

    def __init__(self) -> None:
        self.line = 0
        self.bytes = 0
        self.undecodable: list[Record] = []


def _decoded(binary: IO[bytes], position: Position) -> Iterator[str]:
    for raw in binary:
        position.line += 1
        position.bytes += len(raw)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = raw[exc.start : exc.start + 4]
            message = f"not valid UTF-8 at byte {exc.start + 1} of the line ({bad!r})"
            if position.line == 1:
                raise DatasetError(f"line 1: {message}; save the file as UTF-8") from None
            position.undecodable.append(Record(position.line, problems=[("", message)]))
            text = "\n"  # a blank line to the csv reader: skipped
        if position.line == 1 and text.startswith("\ufeff"):
            text = text[1:]  # a byte order mark, as spreadsheet programs write
        yield text


def read_csv(binary: IO[bytes], position: Position) -> Iterator[Record]:
    reader = csv.reader(_decoded(binary, position), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise DatasetError("the file is empty: expected a header line")
        names = check_columns(header)
        while True:
            start = position.line + 1
            row = next(reader, None)
            yield from position.undecodable
            position.undecodable.clear()
            if row is None:
                return
            if not row or row == [""]:
                continue
            if len(row) != len(names):
                message = f"expected {len(names)} fields, got {len(row)}"
                yield Record(start, problems=[("", message)])
                continue
            yield Record(start, dict(zip(names, row, strict=True)))
    except csv.Error as exc:
        raise DatasetError(f"line {position.line}: malformed CSV: {exc}") from None


def read_json(binary: IO[bytes], position: Position, size: int) -> Iterator[Record]:
    """JSON Lines (one object per line), streamed; or a JSON array of objects, parsed whole
    when it is at most JSON_ARRAY_MAX_BYTES (its records are numbered by position)."""
    first = binary.read(1)
    while first and first.isspace():
        first = binary.read(1)
    binary.seek(0)
    if first == b"[":
        if size > JSON_ARRAY_MAX_BYTES:
            raise DatasetError(
                f"a JSON array over {JSON_ARRAY_MAX_BYTES} bytes is not read whole:"
                " send JSON Lines (one object per line) instead"
            )
        try:
            items = json.load(binary)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DatasetError(f"not valid JSON: {exc}") from None
        position.bytes = size
        for number, item in enumerate(items, start=1):
            position.line = number
            yield _json_record(number, item)
        return
    for text in _decoded(binary, position):
        yield from position.undecodable
        position.undecodable.clear()
        if not text.strip():
            continue
        try:
            item = json.loads(text)
        except ValueError as exc:
            yield Record(position.line, problems=[("", f"not valid JSON: {exc}")])
            continue
        yield _json_record(position.line, item)


def _json_record(line: int, item: Any) -> Record:
    if not isinstance(item, dict):
        return Record(line, problems=[("", "must be a JSON object")])
    unknown = [key for key in item if key not in COLUMNS]
    if unknown:
        return Record(line, problems=[(key, "unknown field") for key in unknown])
    return Record(line, item)
