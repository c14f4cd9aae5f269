"""/api/admin/jobs/aggregate-daily: POST runs the aggregation over a range of days, GET
shows its queue and schedule (catalog/admin_urls.py, mounted by project/urls.py)."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse

import tasks
from tasks import API_READ, API_WRITE, api_view, read_json

JOB_TYPE = "aggregate-daily"
#: Each list of `recent` holds up to this many aggregate-daily jobs, found among the
#: queue's RECENT_SCAN newest jobs of that state (the queue is shared with other reports).
RECENT_PER_STATE, RECENT_SCAN = 10, 100


@transaction.non_atomic_requests  # enqueue sends at once, not at an outer commit
@api_view({"GET": API_READ, "POST": API_WRITE})
def aggregate_daily(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        # {type: "range", startDate, endDate} (or {type: "daily"}): validated by the job
        # type's schema; InvalidJobData is a 422 naming each field at fault.
        job = tasks.enqueue(JOB_TYPE, read_json(request))
        return JsonResponse({"jobId": job.id, "queue": job.queue, "state": job.state},
                            status=202)  # fmt: skip
    queue_name = tasks.get_job_type(JOB_TYPE).queue
    queue = tasks.Queue(queue_name)
    recent = {
        state: [job.to_dict() for job in queue.get_jobs([state], 0, RECENT_SCAN - 1)
                if job.name == JOB_TYPE][:RECENT_PER_STATE]
        for state in ("completed", "failed", "active")
    }  # fmt: skip
    scheduled = [
        {"key": s["key"], "pattern": s["pattern"], "next": s["next"], "enabled": s["enabled"]}
        for s in tasks.list_schedules(queue_name)
        if s["jobType"] == JOB_TYPE
    ]
    return JsonResponse({"queue": queue_name, "counts": queue.counts(), "recent": recent,
                         "scheduled": scheduled})  # fmt: skip
