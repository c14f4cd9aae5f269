"""Everything under /api/ (project/urls.py includes this module there).

The paths are the seed apps' (DESIGN.md, "HTTP API"). Every one, the catch-all included,
asks for a token or a staff session first: nothing here answers without one.
"""

from django.urls import path, re_path

from tasks.api import flows, openapi, sse, views

urlpatterns = [
    path("admin/jobs/trigger", views.trigger, name="api-trigger"),
    path("admin/jobs/status", views.status, name="api-status"),
    path("v1/flows", flows.flows, name="api-flows"),
    # The seeds' own shapes (issue #14): the health platform's queue page, the pricing
    # engine's metrics, the API boilerplate's stats (before the job route, which would
    # read "stats" as a job id).
    path("admin/jobs/<str:queue>", views.queue_detail, name="api-admin-queue"),
    path("jobs/metrics", views.jobs_metrics, name="api-jobs-metrics"),
    path("v1/jobs/<str:queue>/stats", views.queue_stats, name="api-job-queue-stats"),
    path("v1/jobs/<str:queue>/<str:job_id>", views.job_detail, name="api-job"),
    path("v1/jobs/<str:queue>/<str:job_id>/retry", views.job_retry, name="api-job-retry"),
    path("v1/jobs/<str:queue>/<str:job_id>/logs", views.job_logs, name="api-job-logs"),
    path("v1/jobs/<str:queue>/<str:job_id>/cancel", views.job_cancel, name="api-job-cancel"),
    path("v1/jobs/<str:queue>/<str:job_id>/promote", views.job_promote, name="api-job-promote"),
    path("v1/queues", views.queues, name="api-queues"),
    path("v1/queues/<str:queue>", views.queue_detail, name="api-queue"),
    path("v1/queues/<str:queue>/stats", views.queue_stats, name="api-queue-stats"),
    path("v1/queues/<str:queue>/jobs", views.queue_jobs, name="api-queue-jobs"),
    path("v1/queues/<str:queue>/pause", views.queue_pause, name="api-queue-pause"),
    path("v1/queues/<str:queue>/resume", views.queue_resume, name="api-queue-resume"),
    path(
        "v1/queues/<str:queue>/retry-failed",
        views.queue_retry_failed,
        name="api-queue-retry-failed",
    ),  # fmt: skip
    path("v1/queues/<str:queue>/clean", views.queue_clean, name="api-queue-clean"),
    path(
        "v1/queues/<str:queue>/recover-stalled",
        views.queue_recover_stalled,
        name="api-queue-recover-stalled",
    ),  # fmt: skip
    path("v1/workers", views.workers, name="api-workers"),
    path("v1/job-types", views.job_types, name="api-job-types"),
    path("v1/events", sse.events, name="api-events"),
    path("v1/openapi.json", openapi.document, name="api-openapi"),
    path("v1/docs", openapi.docs, name="api-docs"),
    # Anything else: a JSON 404 (after authentication), never Django's HTML page.
    re_path(r"^(?P<path>.*)$", views.unknown_path, name="api-unknown"),
]
