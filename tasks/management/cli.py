"""Helpers of the operator commands (`manage.py jobs`, `manage.py api_token`): tables for
people, JSON for scripts, `--param key=value` parsing, a text progress bar, exit codes."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

#: Exit codes: scripts tell these apart.
OK, FAILED, BAD_INPUT, NOT_FOUND = 0, 1, 2, 3


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table, columns as wide as their widest cell."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """`--param maxMagnitude=12 --param name=comets`: each value is JSON when it parses as
    JSON (12, true, null, [1, 2], {"a": 1}, "quoted") and a plain string otherwise."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param {pair!r}: expected key=value")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        params[key.strip()] = value
    return params


def when(ms: int | None) -> str:
    """A registry timestamp (ms) as a UTC time of day, or '' when unset."""
    if not ms:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))


def ago(ms: int | None, now_ms: float | None = None) -> str:
    if not ms:
        return ""
    seconds = ((now_ms if now_ms is not None else time.time() * 1000) - ms) / 1000
    return f"{seconds:.1f}s ago" if seconds < 120 else f"{seconds / 60:.0f}m ago"


def progress_bar(progress: Any, width: int = 30) -> str:
    """`[###########...................]  37%` for a number; an object as compact JSON."""
    if isinstance(progress, int | float) and not isinstance(progress, bool):
        share = max(0.0, min(100.0, float(progress)))
        filled = round(width * share / 100)
        return f"[{'#' * filled}{'.' * (width - filled)}] {share:3.0f}%"
    return f"[progress] {json.dumps(progress, separators=(',', ':'))}"


def shorten(text: str | None, length: int = 60) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= length else text[: length - 1] + "…"
