"""The row schema of an observations dataset, and one row's validation.

A row is a comet observation: `designation` (e.g. "C/2023 A3"), `observed_at` (ISO 8601;
without a zone it is UTC), `magnitude` (apparent, a number), and optionally `observer` and
`method`. Validation is hand-written rather than a pydantic model per row: it runs a
million times per large import.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from tasks import PermanentError

REQUIRED = ("designation", "observed_at", "magnitude")
OPTIONAL = ("observer", "method")
COLUMNS = REQUIRED + OPTIONAL
#: Field lengths, as the Observation model has them.
MAX_LENGTH = {"designation": 64, "observer": 100, "method": 32}
#: Apparent magnitudes outside this range are typing mistakes, not comets.
MAGNITUDE_RANGE = (-30.0, 40.0)

#: (designation, observed_at, magnitude, observer, method), ready for the database.
Row = tuple[str, datetime, float, str, str]
#: (field, message) of one problem of a row.
Problem = tuple[str, str]


class DatasetError(PermanentError):
    """The dataset as a whole is unusable (wrong columns, unreadable): no retry helps."""


def check_columns(header: Iterable[str]) -> list[str]:
    """The header's column names, normalised; DatasetError naming what is missing,
    unknown or repeated."""
    names = [name.strip().lower() for name in header]
    problems = []
    missing = [c for c in REQUIRED if c not in names]
    unknown = [n for n in names if n not in COLUMNS]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown columns: {', '.join(repr(n) for n in unknown)}")
    if repeated:
        problems.append(f"repeated columns: {', '.join(repeated)}")
    if problems:
        raise DatasetError(
            f"line 1: {'; '.join(problems)} (expected {', '.join(REQUIRED)}"
            f" and optionally {', '.join(OPTIONAL)})"
        )
    return names


def parse_row(values: dict[str, Any]) -> tuple[Row | None, list[Problem]]:
    """A row's values (strings from CSV, JSON values from JSON) as a Row, or its problems."""
    problems: list[Problem] = []
    text: dict[str, str] = {}
    for name in ("designation", "observer", "method"):
        value = values.get(name)
        if value is None:
            value = ""
        if not isinstance(value, str):
            problems.append((name, "must be a string"))
            continue
        value = value.strip()
        if len(value) > MAX_LENGTH[name]:
            problems.append((name, f"longer than {MAX_LENGTH[name]} characters"))
        text[name] = value
    if "designation" in text and not text["designation"]:
        problems.append(("designation", "required"))
    observed_at = _parse_time(values.get("observed_at"), problems)
    magnitude = _parse_magnitude(values.get("magnitude"), problems)
    if problems:
        return None, problems
    return (text["designation"], observed_at, magnitude, text["observer"], text["method"]), []


def _parse_time(value: Any, problems: list[Problem]) -> datetime | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        problems.append(("observed_at", "required"))
        return None
    if not isinstance(value, str):
        problems.append(("observed_at", "must be an ISO 8601 date-time string"))
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        problems.append(("observed_at", f"not an ISO 8601 date-time: {value[:40]!r}"))
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)  # the schema's rule: no zone means UTC
    return moment.astimezone(UTC)


def _parse_magnitude(value: Any, problems: list[Problem]) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        problems.append(("magnitude", "required"))
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        problems.append(("magnitude", "must be a number"))
        return None
    try:
        number = float(value)
    except ValueError:
        problems.append(("magnitude", f"not a number: {value[:40]!r}"))
        return None
    low, high = MAGNITUDE_RANGE
    if not math.isfinite(number) or not low <= number <= high:
        problems.append(("magnitude", f"must be a number from {low:g} to {high:g}"))
        return None
    return number
