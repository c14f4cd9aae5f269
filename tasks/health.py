"""Liveness (/healthz: the process answers) and readiness (/readyz: its dependencies do;
"degraded" when Redis's settings can lose jobs, tasks/redis_settings.py)."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from tasks.connection import get_redis
from tasks.redis_settings import warn_once


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis() -> None:
    get_redis().ping()


CHECKS = {"database": _check_database, "redis": _check_redis}


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # any failure of a dependency means "not ready"
            results[name] = f"error: {type(exc).__name__}: {exc}"
    failed = [name for name, result in results.items() if result != "ok"]
    if not failed:
        # Settings that lose jobs (eviction, no AOF in production) leave the process ready
        # (taking it out of service would help nothing) but say so: "degraded".
        problems = warn_once("web")
        if problems:
            results["redis_settings"] = "; ".join(problems)
            return JsonResponse({"status": "degraded", "checks": results})
        return JsonResponse({"status": "ok", "checks": results})
    return JsonResponse(
        {
            "status": "unavailable",
            "checks": results,
            "error": {"code": "not_ready", "message": f"unreachable: {', '.join(failed)}"},
        },
        status=503,
    )
