"""Rows to a file: CSV streamed a chunk at a time, PDF drawn a page at a time (reportlab).

Both write to a path (a temporary file the service then saves to storage) and call
`on_rows(written)` every PROGRESS_EVERY rows, so the job reports progress as rows stream.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Any

#: Rows between progress reports (and CSV buffer flushes): one Redis write per this many.
PROGRESS_EVERY = 5000


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def write_csv(path: str, columns: list[str], rows: Iterable[list[Any]],
              on_rows: Callable[[int], None] = lambda n: None) -> int:  # fmt: skip
    """Write a header and every row to `path`; the number of rows. Only one chunk of rows
    is ever held: the file object's buffer goes to disk as it fills."""
    written = 0
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(columns)
        chunk: list[list[str]] = []
        for row in rows:
            chunk.append([cell(v) for v in row])
            if len(chunk) >= PROGRESS_EVERY:
                writer.writerows(chunk)
                written += len(chunk)
                chunk.clear()
                on_rows(written)
        writer.writerows(chunk)
        written += len(chunk)
    on_rows(written)
    return written


def write_pdf(path: str, title: str, subtitle: str, columns: list[str],
              rows: Iterable[list[Any]], on_rows: Callable[[int], None] = lambda n: None,
              max_rows: int = 10_000) -> tuple[int, bool]:  # fmt: skip
    """A landscape A4 table, `max_rows` rows at most (reportlab keeps a document's pages
    until it saves it, so a PDF's memory grows with its pages: CSV is for the big ones).
    Returns (rows written, whether rows were left out)."""
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.pdfgen.canvas import Canvas

    width, height = landscape(A4)
    margin, line, size = 36, 11, 7
    pdf = Canvas(path, pagesize=(width, height), pageCompression=1)
    pdf.setTitle(title)
    col_width = (width - 2 * margin) / max(1, len(columns))
    chars = max(4, int(col_width / (size * 0.5)))
    page = 0

    def start_page() -> float:
        nonlocal page
        page += 1
        pdf.setFont("Helvetica-Bold", 12)
        pdf.drawString(margin, height - margin, title)
        pdf.setFont("Helvetica", 8)
        pdf.drawString(margin, height - margin - 12, subtitle)
        pdf.drawRightString(width - margin, height - margin, f"page {page}")
        y = height - margin - 32
        pdf.setFont("Helvetica-Bold", size)
        for i, name in enumerate(columns):
            pdf.drawString(margin + i * col_width, y, name[:chars])
        pdf.setFont("Helvetica", size)
        return y - line

    y = start_page()
    written, truncated = 0, False
    for row in rows:
        if written >= max_rows:
            truncated = True
            break
        if y < margin:
            pdf.showPage()
            y = start_page()
        for i, value in enumerate(row):
            pdf.drawString(margin + i * col_width, y, cell(value)[:chars])
        y -= line
        written += 1
        if written % PROGRESS_EVERY == 0:
            on_rows(written)
    if truncated:
        if y < margin:
            pdf.showPage()
            y = start_page()
        pdf.setFont("Helvetica-Oblique", size)
        pdf.drawString(
            margin, y, f"... the first {max_rows} rows only: ask for CSV for all of them"
        )
    if written == 0:
        pdf.drawString(margin, y, "(no rows)")
    pdf.showPage()
    pdf.save()
    on_rows(written)
    return written, truncated
