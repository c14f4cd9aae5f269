"""`manage.py jobs ...`: trigger, inspect and steer jobs from a terminal or a script.

Tables for people, `--json` for scripts. Exit codes: 0 success, 1 the job failed (or did
not finish in time) or the operation was refused, 2 bad input (the message names the field),
3 not found. Everything goes through the `tasks` Python API.
"""

from __future__ import annotations

import re
import sys
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tasks import (
    InvalidFlow,
    InvalidJobData,
    InvalidJobOptions,
    InvalidJobState,
    Job,
    Queue,
    UnknownJobType,
    enqueue,
    enqueue_flow,
    find_job,
    get_job,
    get_job_type,
    get_workers,
)
from tasks.archive_retention import PRUNABLE, Batch, prune_archive
from tasks.control import cancel_job
from tasks.events import job_events, last_event_id
from tasks.flows import JobNode, flow_of
from tasks.management.cli import (
    BAD_INPUT,
    FAILED,
    NOT_FOUND,
    ago,
    dumps,
    parse_params,
    progress_bar,
    shorten,
    table,
    when,
)
from tasks.scheduling.service import list_schedules
from tasks.states import ACTIVE_NOT_CLEANABLE, CLEANABLE, FINISHED, STATES


class Command(BaseCommand):
    help = "Trigger, inspect and steer background jobs (see docs/api.md, 'The CLI')."

    def add_arguments(self, parser) -> None:
        queues = list(settings.JOBYARD_QUEUES)
        sub = parser.add_subparsers(dest="action", required=True, metavar="COMMAND")

        def command(name: str, text: str, json_flag: bool = True):
            p = sub.add_parser(name, help=text, description=text)
            if json_flag:
                p.add_argument("--json", dest="as_json", action="store_true",
                               help="machine-readable JSON output")  # fmt: skip
            return p

        p = command("trigger", "enqueue a job of TYPE (--wait: follow it to the end)")
        p.add_argument("job_type", metavar="TYPE")
        p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                       help="a parameter; the value is read as JSON when it is JSON (12, true, "
                            "[1,2]), else as a string. Repeatable.")  # fmt: skip
        p.add_argument("--delay", type=int, metavar="MS", help="start no sooner than MS ms")
        p.add_argument("--priority", type=int, metavar="N", help="1 (highest) to 10")
        p.add_argument("--job-id", metavar="ID", help="idempotency: an existing id is kept")
        p.add_argument("--attempts", type=int, metavar="N")
        p.add_argument("--lifo", action="store_true",
                       help="to the front of its queue: the next job of its priority to run")  # fmt: skip
        p.add_argument("--wait", action="store_true",
                       help="wait for the job to finish, with a progress bar on stderr")  # fmt: skip
        p.add_argument("--timeout", type=float, default=300.0, metavar="S",
                       help="--wait gives up after S seconds (exit 1); default 300")  # fmt: skip

        p = command("flow", "enqueue a flow: a parent job that runs once its children "
                            "completed (docs/flows.md)")  # fmt: skip
        p.add_argument("file", metavar="FILE",
                       help="the tree as JSON: {name, data, queue?, opts?, children: [...]}; "
                            "- reads stdin")  # fmt: skip

        p = command("status", "counts per queue, or one job's status")
        p.add_argument("job_id", nargs="?", metavar="JOB_ID")
        p.add_argument("--queue", choices=queues, help="the job's queue (else every queue)")

        p = command("list", "jobs of one queue or every queue, by state")
        p.add_argument("--queue", choices=queues)
        p.add_argument("--state", default=",".join(STATES),
                       help=f"comma-separated states among {', '.join(STATES)}")  # fmt: skip
        p.add_argument("--limit", type=int, default=20, help="per queue; default 20")

        p = command("failed", "the dead-letter list: jobs that failed past their attempts")
        p.add_argument("--queue", choices=queues)
        p.add_argument("--limit", type=int, default=50, help="per queue; default 50")

        p = command("retry", "retry one failed job, or every failed job (--all)")
        target = p.add_mutually_exclusive_group(required=True)
        target.add_argument("job_id", nargs="?", metavar="JOB_ID")
        target.add_argument("--all", action="store_true", help="every failed job")
        p.add_argument("--queue", choices=queues)

        p = command("remove", "remove a job (any state but active)")
        p.add_argument("job_id", metavar="JOB_ID")
        p.add_argument("--queue", choices=queues)

        # Issue 14: logs, cancel, promote. Each takes JOB_ID (with --queue) or QUEUE JOB_ID.
        p = command("logs", "a job's log lines (job.log), oldest first")
        _job_target(p, queues)
        p.add_argument("--start", type=int, default=0, metavar="N", help="first line (0)")
        p.add_argument("--end", type=int, default=-1, metavar="N",
                       help="last line, inclusive (-1: the last; 1,000 lines at most)")  # fmt: skip

        p = command("cancel", "cancel a job: removed if it has not started; a running job is "
                              "asked to stop, then killed after the grace period")  # fmt: skip
        _job_target(p, queues)

        p = command("promote", "run a delayed job now")
        _job_target(p, queues)

        p = command("clean", "remove old jobs of one state from the registry, or (--archive) "
                             "old rows from the job archive")  # fmt: skip
        p.add_argument("--queue", choices=queues, help="default: every queue")
        p.add_argument("--state", metavar="STATE",
                       help=f"the registry: one of {', '.join(CLEANABLE)} (default completed); "
                            f"--archive: one of {', '.join(PRUNABLE)} (default all three)")  # fmt: skip
        p.add_argument("--grace", type=int, default=0, metavar="MS",
                       help="only jobs older than MS ms (default 0: all of them)")  # fmt: skip
        p.add_argument("--limit", type=int, default=1000, help="per queue; default 1000")
        p.add_argument("--archive", action="store_true",
                       help="prune the PostgreSQL job archive instead: finished jobs older "
                            "than their retention (JOBYARD_ARCHIVE_<STATE>_DAYS), with their "
                            "attempts, in batches")  # fmt: skip
        p.add_argument("--older-than", metavar="AGE",
                       help="--archive: rows older than AGE (30d, 12h, 90m, 45s) instead of "
                            "the configured retention")  # fmt: skip

        p = command(
            "recover-stalled",
            "fix stuck active jobs: those whose worker's lock "
            "expired are sent again (or failed, --fail); live ones are left alone",
        )
        p.add_argument("queue", choices=queues, metavar="QUEUE")
        p.add_argument("--fail", action="store_true",
                       help="fail them (no retry) instead of sending them again")  # fmt: skip

        for name, text in (("pause", "stop workers starting QUEUE's jobs (jobs are still "
                                     "accepted)"), ("resume", "start QUEUE again")):  # fmt: skip
            p = command(name, text)
            p.add_argument("queue", choices=queues, metavar="QUEUE")

        command("workers", "live workers: host, queues, concurrency, running, heartbeat")

        p = command("schedules", "schedules: key, job type, queue, pattern, next run")
        p.add_argument("--queue", choices=queues)

        p = command("watch", "a live table of queue counts (Ctrl-C stops)", json_flag=False)
        p.add_argument("--interval", type=float, default=1.0, metavar="S")
        p.add_argument("--iterations", type=int, default=0, metavar="N",
                       help="stop after N redraws (default: until Ctrl-C)")  # fmt: skip

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        try:
            getattr(self, "cmd_" + action.replace("-", "_"))(**options)
        except (InvalidJobData, InvalidJobOptions, UnknownJobType, InvalidFlow) as exc:
            raise bad_input(str(exc)) from None

    # --- output ---------------------------------------------------------------------------

    def out(self, as_json: bool, value: Any, text: str) -> None:
        self.stdout.write(dumps(value) if as_json else text)

    def _find(self, job_id: str, queue: str | None) -> Job:
        job = find_job(job_id, queue)
        if job is not None:
            return job
        where = f" in queue {queue!r}" if queue else ""
        raise CommandError(f"no job {job_id!r}{where}", returncode=NOT_FOUND)

    def _queues(self, queue: str | None) -> list[str]:
        return [queue] if queue else list(settings.JOBYARD_QUEUES)

    # --- commands -------------------------------------------------------------------------

    def cmd_trigger(self, job_type: str, param: list[str], delay: int | None,
                    priority: int | None, job_id: str | None, attempts: int | None,
                    wait: bool, timeout: float, as_json: bool, lifo: bool = False,
                    **_: Any) -> None:  # fmt: skip
        try:
            data = parse_params(param)
        except ValueError as exc:
            raise bad_input(str(exc)) from None
        options = {name: value for name, value in
                   (("delay", delay), ("priority", priority), ("job_id", job_id),
                    ("attempts", attempts), ("lifo", lifo or None)) if value is not None}  # fmt: skip
        queue = get_job_type(job_type).queue
        # Read the stream's position before sending: no event of the job can be missed.
        cursor = last_event_id(queue) if wait else None
        job = enqueue(job_type, data, **options)
        created = job.created_at is None  # see tasks/api/views.py: trigger
        reply = {"jobId": job.id, "queue": job.queue, "state": job.state, "created": created}
        if not wait:
            note = "" if created else " (existing job: nothing new created)"
            self.out(as_json, reply, f"{job.id}  {job.queue}  {job.state}{note}")
            return
        outcome, value = self._follow(job, cursor, timeout)
        reply.update({"state": outcome, "result" if outcome == "completed" else "error": value})
        if outcome == "completed":
            self.out(as_json, reply, dumps(value))
            return
        if as_json:
            self.stdout.write(dumps(reply))
        raise CommandError(f"job {job.id} {outcome}: {value}", returncode=FAILED)

    def _follow(self, job: Job, cursor: str, timeout: float) -> tuple[str, Any]:
        """Follow the job's events to its end: ('completed', returnvalue) or
        ('failed' | 'removed' | 'timed out', reason). Progress goes to stderr as a bar."""
        import json

        current = get_job(job.queue, job.id)
        if current is not None and current.state in FINISHED:
            if current.state == "completed":
                return "completed", current.returnvalue
            return "failed", current.failed_reason
        tty = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
        shown = False
        for event in job_events(job.queue, job.id, cursor, timeout):
            if event.event == "progress":
                bar = progress_bar(json.loads(event.fields["progress"]))
                self.stderr.write(("\r" + bar) if tty else bar, ending="" if tty else "\n")
                self.stderr.flush()
                shown = True
            elif event.event in ("completed", "failed", "removed"):
                if shown and tty:
                    self.stderr.write("")
                if event.event == "completed":
                    return "completed", json.loads(event.fields["returnvalue"])
                if event.event == "failed":
                    return "failed", event.fields.get("failedReason", "")
                return "removed", "the job was removed"
            elif event.event == "retrying":
                self.stderr.write(f"attempt {event.fields.get('attemptsMade')} failed: "
                                  f"{event.fields.get('failedReason', '')}; retrying")  # fmt: skip
        return "timed out", f"not finished within {timeout:g} s"

    def cmd_flow(self, file: str, as_json: bool, **_: Any) -> None:
        import json

        try:
            if file == "-":
                text = sys.stdin.read()
            else:
                with open(file, encoding="utf-8") as handle:
                    text = handle.read()
        except OSError as exc:
            raise bad_input(f"FILE: cannot read {file}: {exc.strerror}") from None
        try:
            tree = json.loads(text)
        except ValueError as exc:
            raise bad_input(f"FILE: not JSON: {exc}") from None
        try:
            node = enqueue_flow(tree)
        except InvalidJobState as exc:
            raise CommandError(str(exc), returncode=FAILED) from None
        if not node.created:
            job = node.job
            self.out(as_json, {"created": False, "job": job.to_dict()},
                     f"{job.id}  {job.queue}  {job.state} (existing job: nothing new created)")  # fmt: skip
            return
        self.out(as_json, {"created": True, "flow": node.to_dict()}, _flow_lines(node))

    def cmd_status(self, job_id: str | None, queue: str | None, as_json: bool, **_: Any) -> None:
        if job_id:
            job = self._find(job_id, queue)
            d = job.to_dict()
            ts = d["timestamps"]
            lines = [
                f"job        {job.id}",
                f"type       {job.name}",
                f"queue      {job.queue}",
                f"state      {job.state}",
                f"progress   {progress_bar(job.progress)}",
                f"attempts   {job.attempts_made} of {job.attempts}",
                f"data       {dumps(job.data)}",
                f"created    {when(ts['createdAt'])}",
                f"started    {when(ts['processedOn'])}",
                f"finished   {when(ts['finishedOn'])}",
            ]
            if job.delay_until:
                lines.append(f"due        {when(job.delay_until)}")
            if job.failed_reason:
                lines.append(f"reason     {job.failed_reason}")
            if job.state == "completed":
                lines.append(f"result     {dumps(job.returnvalue)}")
            flow = flow_of(job)
            if flow["parent"]:
                parent = flow["parent"]
                lines.append(f"parent     {parent['queue']}/{parent['id']}  {parent['state']}")
            for child in flow["children"]:
                lines.append(f"child      {child['queue']}/{child['id']}  {child['state']}"
                             f"  ({child['dependency']})")  # fmt: skip
            self.out(as_json, {**d, **flow}, "\n".join(lines))
            return
        counts = {name: Queue(name).counts() for name in self._queues(queue)}
        self.out(as_json, counts, _counts_table(counts))

    def cmd_list(self, queue: str | None, state: str, limit: int, as_json: bool,
                 **_: Any) -> None:  # fmt: skip
        states = [s.strip() for s in state.split(",") if s.strip()]
        unknown = [s for s in states if s not in STATES]
        if unknown or not states:
            raise bad_input(f"--state: {', '.join(unknown) or '(none)'}: states are "
                            f"{', '.join(STATES)}")  # fmt: skip
        if limit < 1:
            raise bad_input("--limit must be at least 1")
        jobs = [j for name in self._queues(queue)
                for j in Queue(name).get_jobs(states, 0, limit - 1)]  # fmt: skip
        rows = [[j.id, j.name, j.queue, j.state, f"{j.attempts_made}/{j.attempts}",
                 when(j.created_at), when(j.finished_on)] for j in jobs]  # fmt: skip
        self.out(as_json, [j.to_dict() for j in jobs],
                 table(["id", "type", "queue", "state", "attempts", "created", "finished"],
                       rows) if rows else "no jobs")  # fmt: skip

    def cmd_failed(self, queue: str | None, limit: int, as_json: bool, **_: Any) -> None:
        if limit < 1:
            raise bad_input("--limit must be at least 1")
        jobs = [j for name in self._queues(queue) for j in Queue(name).get_failed(0, limit - 1)]
        rows = [[j.id, j.name, j.queue, j.attempts_made, when(j.finished_on),
                 shorten(j.failed_reason)] for j in jobs]  # fmt: skip
        self.out(as_json, [j.to_dict() for j in jobs],
                 table(["id", "type", "queue", "attempts", "failed at", "reason"], rows)
                 if rows else "no failed jobs")  # fmt: skip

    def cmd_retry(self, job_id: str | None, all: bool, queue: str | None, as_json: bool,
                  **_: Any) -> None:  # fmt: skip
        if all:
            retried = {name: Queue(name).retry_failed() for name in self._queues(queue)}
            total = sum(retried.values())
            self.out(as_json, {"retried": retried, "total": total},
                     f"retried {total} failed job(s)")  # fmt: skip
            return
        job = self._find(job_id, queue)
        try:
            job.retry()
        except InvalidJobState as exc:
            raise CommandError(str(exc), returncode=FAILED) from None
        self.out(as_json, job.to_dict(), f"{job.id}  {job.queue}  {job.state}")

    def cmd_remove(self, job_id: str, queue: str | None, as_json: bool, **_: Any) -> None:
        job = self._find(job_id, queue)
        try:
            job.remove()
        except InvalidJobState as exc:
            if get_job(job.queue, job.id) is None:
                raise CommandError(str(exc), returncode=NOT_FOUND) from None
            raise CommandError(str(exc), returncode=FAILED) from None
        self.out(as_json, {"jobId": job_id, "queue": job.queue, "removed": True},
                 f"removed {job_id} from {job.queue}")  # fmt: skip

    # --- issue 14: logs, cancel, promote ----------------------------------------------------

    def _target(self, target: list[str], queue: str | None) -> Job:
        if len(target) == 2:
            if queue and queue != target[0]:
                raise bad_input(f"--queue {queue} and QUEUE {target[0]} disagree")
            queue = target[0]
            if queue not in settings.JOBYARD_QUEUES:
                raise bad_input(f"QUEUE: unknown queue {queue!r}; queues: "
                                f"{', '.join(settings.JOBYARD_QUEUES)}")  # fmt: skip
        elif len(target) != 1:
            raise bad_input("expected JOB_ID or QUEUE JOB_ID")
        return self._find(target[-1], queue)

    def cmd_logs(self, target: list[str], queue: str | None, start: int, end: int,
                 as_json: bool, **_: Any) -> None:  # fmt: skip
        if start < 0 or end < -1 or (end != -1 and end < start):
            raise bad_input("--start must be >= 0 and --end -1 or at least --start")
        job = self._target(target, queue)
        lines, count = job.get_logs(start, end)
        shown = "\n".join(lines) if lines else f"no log lines (the job holds {count})"
        self.out(as_json, {"logs": lines, "count": count}, shown)

    def cmd_cancel(self, target: list[str], queue: str | None, as_json: bool, **_: Any) -> None:
        job = self._target(target, queue)
        try:
            found = cancel_job(job.queue, job.id)  # archived `cancelled` when removed
        except InvalidJobState as exc:
            raise CommandError(str(exc), returncode=FAILED) from None
        if found is None:
            raise CommandError(f"no job {job.id!r} in queue {job.queue!r}", returncode=NOT_FOUND)
        if found.state is None:
            outcome, text = "removed", f"cancelled {job.id}: it had not started; removed"
        else:
            grace = settings.JOBYARD["CANCEL_GRACE_MS"]
            outcome = "cancelling"
            text = f"cancelling {job.id}: asked to stop; its process is killed after {grace} ms"
        self.out(as_json, {"jobId": job.id, "queue": job.queue, "cancelled": outcome}, text)

    def cmd_promote(self, target: list[str], queue: str | None, as_json: bool,
                    **_: Any) -> None:  # fmt: skip
        job = self._target(target, queue)
        try:
            job.promote()
        except InvalidJobState as exc:
            raise CommandError(str(exc), returncode=FAILED) from None
        self.out(as_json, job.to_dict(), f"{job.id}  {job.queue}  {job.state}")

    def cmd_clean(self, queue: str | None, state: str | None, grace: int, limit: int,
                  archive: bool, older_than: str | None, as_json: bool, **_: Any) -> None:  # fmt: skip
        if archive:
            self._clean_archive(queue, state, older_than, as_json)
            return
        if older_than is not None:
            raise bad_input("--older-than: only with --archive (the registry takes --grace MS)")
        state = state or "completed"
        if state == "active":
            raise bad_input("--state: " + ACTIVE_NOT_CLEANABLE.replace("{queue}", queue or "QUEUE"))
        if state not in CLEANABLE:
            raise bad_input(f"--state: {state!r}: the registry cleans {', '.join(CLEANABLE)}")
        if grace < 0 or limit < 1:
            raise bad_input("--grace must be >= 0 and --limit >= 1")
        removed = {name: Queue(name).clean(grace, limit, state) for name in self._queues(queue)}
        total = sum(len(ids) for ids in removed.values())
        self.out(as_json, {"state": state, "removed": removed, "total": total},
                 f"removed {total} {state} job(s)")  # fmt: skip

    def cmd_recover_stalled(self, queue: str, fail: bool, as_json: bool, **_: Any) -> None:
        ids = Queue(queue).recover_stalled(fail=fail)
        action = "fail" if fail else "requeue"
        done = "failed" if fail else "sent again"
        self.out(
            as_json,
            {"queue": queue, "action": action, "recovered": len(ids), "jobIds": ids},
            f"{len(ids)} stalled job(s) of {queue} {done}" + "".join(f"\n  {i}" for i in ids),
        )

    def _clean_archive(self, queue: str | None, state: str | None, older_than: str | None,
                       as_json: bool) -> None:  # fmt: skip
        if state is not None and state not in PRUNABLE:
            raise bad_input(f"--state: {state!r}: the archive prunes {', '.join(PRUNABLE)}")
        age = None
        if older_than is not None:
            try:
                age = parse_age(older_than)
            except ValueError as exc:
                raise bad_input(f"--older-than: {exc}") from None
        tty = hasattr(self.stderr, "isatty") and self.stderr.isatty()

        def report(batch: Batch) -> None:
            if tty:
                self.stderr.write(f"\r{batch.queue}.{batch.state}: {batch.rows} rows in "
                                  f"{batch.seconds:.2f} s", ending="")  # fmt: skip

        summary = prune_archive(queues=[queue] if queue else None,
                                states=[state] if state else None, older_than=age,
                                on_batch=report)  # fmt: skip
        if tty and summary.batches:
            self.stderr.write("")
        self.out(as_json, summary.to_dict(),
                 f"pruned {summary.total} archived job(s) and {summary.attempts} attempt(s) "
                 f"in {summary.batches} batch(es)")  # fmt: skip

    def cmd_pause(self, queue: str, as_json: bool, **_: Any) -> None:
        Queue(queue).pause()
        self.out(as_json, {"queue": queue, "paused": True}, f"paused {queue}")

    def cmd_resume(self, queue: str, as_json: bool, **_: Any) -> None:
        sent = Queue(queue).resume()
        self.out(as_json, {"queue": queue, "paused": False, "resumed": sent},
                 f"resumed {queue}: {sent} parked job(s) sent")  # fmt: skip

    def cmd_workers(self, as_json: bool, **_: Any) -> None:
        found = get_workers()
        rows = [[w["name"], w["host"], ",".join(w["queues"]), w["concurrency"], w["running"],
                 ",".join(w["paused"]), ago(w["lastHeartbeat"])] for w in found]  # fmt: skip
        self.out(as_json, found,
                 table(["name", "host", "queues", "concurrency", "running", "paused",
                        "heartbeat"], rows) if rows else "no live workers")  # fmt: skip

    def cmd_schedules(self, queue: str | None, as_json: bool, **_: Any) -> None:
        found = list_schedules(queue)
        # A broken schedule (its pattern never fires, its parameters no longer fit) has no
        # next run and says why in the last column.
        rows = [[s["key"], s["jobType"], s["queue"], s["pattern"], when(s["next"]) or "-",
                 "" if s["enabled"] else "disabled", s["lastError"]] for s in found]  # fmt: skip
        self.out(as_json, found,
                 table(["key", "job type", "queue", "pattern", "next run", "", "error"], rows)
                 if rows else "no schedules")  # fmt: skip

    def cmd_watch(self, interval: float, iterations: int, **_: Any) -> None:
        tty = hasattr(self.stdout, "isatty") and self.stdout.isatty()
        drawn = 0
        try:
            while True:
                counts = {name: Queue(name).counts() for name in settings.JOBYARD_QUEUES}
                stamp = time.strftime("%H:%M:%S")
                screen = f"jobs watch  {stamp}  (Ctrl-C stops)\n{_counts_table(counts)}\n"
                # A terminal gets the table redrawn in place; a pipe gets one per tick.
                self.stdout.write(("\x1b[H\x1b[2J" + screen) if tty else screen)
                self.stdout.flush()
                drawn += 1
                if iterations and drawn >= iterations:
                    return
                time.sleep(interval)
        except KeyboardInterrupt:
            return


def _flow_lines(node: JobNode, depth: int = 0) -> str:
    """The flow as created: a job a line, children indented under their parent."""
    job = node.job
    lines = [f"{'  ' * depth}{job.id}  {job.queue}  {job.name}  {job.state}"]
    lines += [_flow_lines(child, depth + 1) for child in node.children]
    return "\n".join(lines)


def _job_target(parser: Any, queues: list[str]) -> None:
    parser.add_argument("target", nargs="+", metavar="[QUEUE] JOB_ID",
                        help="the job's id, after its queue or with --queue")  # fmt: skip
    parser.add_argument("--queue", choices=queues, help="the job's queue (else every queue)")


_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `45s` (a bare number is days) as a timedelta."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise ValueError(f"{text!r}: expected a number and a unit: 30d, 12h, 90m, 45s")
    return timedelta(seconds=float(match.group(1)) * _AGE_UNITS[match.group(2) or "d"])


def bad_input(message: str) -> CommandError:
    return CommandError(message, returncode=BAD_INPUT)


def _counts_table(counts: dict[str, dict[str, int]]) -> str:
    rows = [[name, *(c[s] for s in STATES)] for name, c in counts.items()]
    if len(rows) > 1:
        rows.append(["total", *(sum(c[s] for c in counts.values()) for s in STATES)])
    return table(["queue", *STATES], rows)
