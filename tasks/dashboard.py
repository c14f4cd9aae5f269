"""What the admin dashboard shows, computed from the tasks API: no Redis of its own.

A queue's health at a glance is one badge, from these rules, first match wins:

1. PAUSED: the queue is paused.
2. NO WORKERS: no live worker consumes it (red when jobs are waiting, amber when not:
   nothing would run a job sent now).
3. FAILING: at least FAILING_RATE of the jobs finished in the last hour failed, over at
   least FAILING_MIN_FINISHED jobs (one failure out of two is noise, not an incident).
4. RETRYING: at least FAILING_RATE of the attempts that ended in the last hour failed (and
   were retried or failed), over at least FAILING_MIN_FINISHED attempts: the retries hide
   it from the final failure rate, not from the workers or the services they call.
5. BACKLOG: BACKLOG_WAITING or more jobs are waiting.
6. OK.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from tasks import all_queue_metrics, get_workers, unknown_job_types
from tasks.metrics import last_day

#: Failure rate over the last hour that marks a queue as failing.
FAILING_RATE = 0.10
#: Fewer jobs finished than this in the last hour: the failure rate says nothing yet.
FAILING_MIN_FINISHED = 5
#: Waiting jobs from which a queue is shown as backlogged.
BACKLOG_WAITING = 100

COMPLETED_COLOR, FAILED_COLOR, RETRIED_COLOR = "#2e7d32", "#c62828", "#ef6c00"

log = structlog.get_logger("jobyard.dashboard")


@dataclass(frozen=True)
class Health:
    label: str
    level: str  # ok | info | warn | bad: the badge's colour
    reason: str


def health(metrics: dict[str, Any]) -> Health:
    counts = metrics["counts"]
    waiting = counts["waiting"] + counts["paused"]
    finished = sum(m["completed"] + m["failed"] for m in metrics["lastHour"])
    if metrics["paused"]:
        return Health("paused", "info", f"paused; {waiting} jobs parked until resumed")
    if metrics["workers"] == 0:
        if waiting:
            return Health("no workers", "bad", f"{waiting} jobs waiting and no worker to run them")
        return Health("no workers", "warn", "no live worker consumes this queue")
    if finished >= FAILING_MIN_FINISHED and metrics["failureRate"] >= FAILING_RATE:
        return Health(
            "failing",
            "bad",
            f"{metrics['failureRate']:.0%} of {finished} jobs failed in the last hour",
        )
    attempts = finished + sum(m["retried"] for m in metrics["lastHour"])
    if attempts >= FAILING_MIN_FINISHED and metrics["attemptFailureRate"] >= FAILING_RATE:
        return Health(
            "retrying",
            "warn",
            f"{metrics['attemptFailureRate']:.0%} of {attempts} attempts failed in the last "
            f"hour; retries saved all but {metrics['failureRate']:.0%} of the jobs",
        )
    if waiting >= BACKLOG_WAITING:
        return Health("backlog", "warn", f"{waiting} jobs waiting")
    return Health("ok", "ok", "workers up, failures under the threshold, no backlog")


#: The bars of the charts: (key of a bucket, colour), stacked bottom up.
COMPLETED_FAILED = (("completed", COMPLETED_COLOR), ("failed", FAILED_COLOR))
#: The queue cards' charts: every attempt's outcome, retried ones on top.
OUTCOMES = (*COMPLETED_FAILED, ("retried", RETRIED_COLOR))


def bar_chart(series: list[dict[str, Any]], time_key: str, step_label: str,
              width: int = 420, height: int = 56, *, time_format: str = "%H:%M",
              end_label: str = "now", bars: tuple[tuple[str, str], ...] = COMPLETED_FAILED,
              details: tuple[str, ...] = ("completed", "failed", "retried"),
              unit: str = "") -> SafeString:  # fmt: skip
    """Stacked bars (by default completed, failed) per bucket as inline SVG; hover shows the
    numbers. `time_key` holds each bucket's start (epoch seconds, shown in UTC with
    `time_format`); `bars` the keys stacked and their colours; `details` the keys a bar's
    hover text lists (a missing value, None, shows as "—"), each followed by `unit`."""
    top = max((sum(b[k] or 0 for k, _ in bars) for b in series), default=0)
    scale = (height - 6) / top if top else 0
    left, bar_w = 28, (width - 28) / max(len(series), 1)
    parts = [
        f'<svg class="jy-chart" viewBox="0 0 {width} {height + 14}" width="100%" '
        f'role="img" aria-label="{escape(" and ".join(k for k, _ in bars))} per {step_label}">',
        f'<line x1="{left}" y1="{height}" x2="{width}" y2="{height}" stroke="#bbb"/>',
        f'<text x="{left - 4}" y="10" text-anchor="end">{_number(top)}</text>',
        f'<text x="{left - 4}" y="{height}" text-anchor="end">0</text>',
    ]
    for i, bucket in enumerate(series):
        x = left + i * bar_w
        when = time.strftime(time_format, time.gmtime(bucket[time_key]))
        numbers = ", ".join(
            f"{'—' if bucket.get(k) is None else _number(bucket[k]) + unit} {k}" for k in details
        )
        parts.append(f"<g><title>{escape(f'{when} UTC: {numbers}')}</title>")
        parts.append(
            f'<rect x="{x:.1f}" y="0" width="{bar_w:.1f}" height="{height}" fill="transparent"/>'
        )
        below = 0.0
        for key, color in bars:
            bar_h = (bucket[key] or 0) * scale
            if bar_h:
                parts.append(
                    f'<rect x="{x + 0.5:.1f}" y="{height - below - bar_h:.1f}" '
                    f'width="{max(bar_w - 1, 0.5):.1f}" height="{bar_h:.1f}" fill="{color}"/>'
                )
            below += bar_h
        parts.append("</g>")
    first = time.strftime(time_format, time.gmtime(series[0][time_key])) if series else ""
    parts.append(f'<text x="{left}" y="{height + 12}">{first}</text>')
    parts.append(
        f'<text x="{width}" y="{height + 12}" text-anchor="end">{escape(end_label)}</text>'
    )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped text only


def _number(value: float) -> str:
    return str(round(value)) if isinstance(value, float) else str(value)


# --- sections other apps add ----------------------------------------------------------------


@dataclass(frozen=True)
class DashboardSection:
    key: str
    title: str
    #: A template rendered with the dashboard's context plus `section`, this section's
    #: `context()`.
    template: str
    context: Callable[[], dict[str, Any]]


#: key -> section, in the order they were added: shown below the queues.
DASHBOARD_SECTIONS: dict[str, DashboardSection] = {}


def dashboard_section(key: str, title: str, template: str,
                      context: Callable[[], dict[str, Any]]) -> DashboardSection:  # fmt: skip
    """Add a section to the admin dashboard (an app calls this in its AppConfig.ready):
    `template` is included with `section` = `context()`'s dict, computed on each view. The
    same key again replaces the section (ready() may run twice in tests)."""
    added = DashboardSection(key, title, template, context)
    DASHBOARD_SECTIONS[key] = added
    return added


def dashboard_sections() -> list[dict[str, Any]]:
    """Each section's key, title, template and context, for the dashboard's template. A
    section whose context raises is shown with its error: one app's fault must not take the
    dashboard down."""
    shown = []
    for section in DASHBOARD_SECTIONS.values():
        try:
            context, error = section.context(), ""
        except Exception as exc:  # noqa: BLE001 - shown on the page and logged
            log.exception("dashboard_section_failed", section=section.key)
            context, error = {}, f"{type(exc).__name__}: {exc}"
        shown.append({"key": section.key, "title": section.title,
                      "template": section.template, "context": context, "error": error})  # fmt: skip
    return shown


def dashboard_context() -> dict[str, Any]:
    workers = get_workers()
    queues = []
    for name, metrics in all_queue_metrics().items():
        day = last_day(name)
        counts = metrics["counts"]
        queues.append(
            {
                "name": name,
                "metrics": metrics,
                "counts": counts,
                # A template cannot read a key with a hyphen.
                "waiting_children": counts.get("waiting-children", 0),
                "health": health(metrics),
                "hour_chart": bar_chart(metrics["lastHour"], "minute", "minute", bars=OUTCOMES),
                "day_chart": bar_chart(day, "hour", "hour", bars=OUTCOMES),
                "hour_totals": _totals(metrics["lastHour"]),
                "day_totals": _totals(day),
                "workers": [w for w in workers if name in w["queues"]],
            }
        )
    now_ms = time.time() * 1000
    for w in workers:
        w["heartbeat_age_s"] = max(0, round((now_ms - w["lastHeartbeat"]) / 1000, 1))
    return {"queues": queues, "workers": workers, "unknown_types": unknown_job_types(),
            "sections": dashboard_sections()}  # fmt: skip


def _totals(series: list[dict[str, Any]]) -> dict[str, int]:
    return {k: sum(b[k] for b in series) for k in ("completed", "failed", "retried")}


def archive_context() -> dict[str, Any]:
    """The job archive's size (rows, bytes with indexes), its oldest job and the retention
    that bounds it, for the dashboard: a few catalog and index reads, no COUNT(*) of the
    table (tasks/archive_retention.py)."""
    from tasks.archive_retention import PRUNABLE, archive_size, retention_table

    retention = retention_table()
    # One line when every queue keeps the defaults (the common case), a row per queue else.
    same = all({s: r[s] for s in PRUNABLE} == {s: retention[0][s] for s in PRUNABLE}
               for r in retention)  # fmt: skip
    rows = [{"queue": r["queue"], "days": [(s, r[s]) for s in PRUNABLE]}
            for r in (retention[:1] if same else retention)]  # fmt: skip
    return {"size": archive_size(), "retention": rows, "uniform": same}
