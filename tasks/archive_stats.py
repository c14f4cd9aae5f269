"""Statistics read from the job archive, for apps that chart history past the registry's
24 hours (the catalog's daily aggregation, docs/aggregation.md).

Read-only; tasks/archive.py stays the rows' one writer.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import connection

#: The day's cohort is every job that finished in it (completed or failed, by finished_on,
#: UTC). Joined to its attempts: each attempt is a row, and a job whose attempts the archive
#: lacks (archived from the registry after a stream gap) is one row with no attempt, its
#: numbers then taken from the job itself (attempts_made, processed_on, finished_on).
#: GROUPING SETS gives each (queue, job type) and each queue as a whole (job_type NULL) in
#: the same scan: percentiles do not add up, so the queue's own are computed, not derived.
_DAILY_SQL = """
SELECT j.queue,
       j.name,
       GROUPING(j.name) = 1 AS whole_queue,
       COUNT(DISTINCT j.id) FILTER (WHERE j.state = 'completed') AS processed,
       COUNT(DISTINCT j.id) FILTER (WHERE j.state = 'failed') AS failed,
       COUNT(a.id) FILTER (WHERE a.number > 1)
         + COALESCE(SUM(GREATEST(j.attempts_made - 1, 0)) FILTER (WHERE a.id IS NULL), 0)
         AS retried,
       percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY
         EXTRACT(EPOCH FROM COALESCE(a.finished_at - a.started_at, j.finished_on - j.processed_on)) * 1000)
         FILTER (WHERE COALESCE(a.finished_at - a.started_at, j.finished_on - j.processed_on) IS NOT NULL
                 AND (a.id IS NULL OR a.finished_at IS NOT NULL))
         AS processing,
       percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY
         EXTRACT(EPOCH FROM COALESCE(a.started_at, j.processed_on) - j.created_at) * 1000)
         FILTER (WHERE (a.id IS NULL OR a.number = 1)
                 AND COALESCE(a.started_at, j.processed_on) IS NOT NULL AND j.created_at IS NOT NULL)
         AS waiting
  FROM {jobs} j
  LEFT JOIN {attempts} a ON a.job_id = j.id
 WHERE j.finished_on >= %s AND j.finished_on < %s AND j.state IN ('completed', 'failed')
 GROUP BY GROUPING SETS ((j.queue, j.name), (j.queue))
 ORDER BY j.queue, whole_queue DESC, j.name
"""


def archive_daily_stats(day: date) -> list[dict[str, Any]]:
    """Per queue and job type, the jobs that finished on `day` (UTC): `processed`
    (completed), `failed`, `retried` (their attempts beyond the first), and the p50/p95 in
    ms of each attempt's processing time (`processing_p50_ms`, `processing_p95_ms`) and of
    the wait from enqueue to the first start (`wait_p50_ms`, `wait_p95_ms`; None when no
    job had one). A row with `job_type` None is its queue as a whole.

    One SQL query (PostgreSQL's percentile_cont), over the finished_on range of the day.
    """
    from tasks.models import JobAttempt, JobRecord

    start = datetime.combine(day, time.min, tzinfo=UTC)
    sql = _DAILY_SQL.format(jobs=JobRecord._meta.db_table, attempts=JobAttempt._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(sql, [start, start + timedelta(days=1)])
        rows = cursor.fetchall()
    result = []
    for queue, name, whole_queue, processed, failed, retried, processing, waiting in rows:
        processing, waiting = processing or [None, None], waiting or [None, None]
        result.append(
            {
                "queue": queue,
                "job_type": None if whole_queue else name,
                "processed": processed,
                "failed": failed,
                "retried": int(retried),
                "processing_p50_ms": processing[0],
                "processing_p95_ms": processing[1],
                "wait_p50_ms": waiting[0],
                "wait_p95_ms": waiting[1],
            }
        )
    return result
