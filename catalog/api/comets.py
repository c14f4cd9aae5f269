"""GET /api/v1/catalog/comets: comets, brightest first, a page at a time (read scope)."""

from __future__ import annotations

import math
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from catalog.models import Comet
from tasks import API_READ, ApiError, api_view

PAGE_SIZE = 50
#: The largest page number asked for before it is a 400 (keeps OFFSET bounded).
MAX_PAGE = 10_000


def _bad(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_query", f"{field}: {message}",
                    fields=[{"field": field, "message": message}])  # fmt: skip


def _query(request: HttpRequest) -> tuple[float | None, bool | None, int]:
    raw = request.GET.get("maxMagnitude", "").strip()
    max_magnitude = None
    if raw:
        try:
            max_magnitude = float(raw)
        except ValueError:
            max_magnitude = math.nan
        if not math.isfinite(max_magnitude):
            raise _bad("maxMagnitude", "must be a number")
    raw = request.GET.get("active", "").strip().lower()
    active = {"": None, "true": True, "1": True, "false": False, "0": False}.get(raw, "bad")
    if active == "bad":
        raise _bad("active", "must be true or false")
    raw = request.GET.get("page", "").strip() or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise _bad("page", f"must be an integer from 1 to {MAX_PAGE}")
    return max_magnitude, active, int(raw)  # type: ignore[return-value]


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def comet_json(comet: Comet) -> dict[str, Any]:
    return {
        "id": comet.pk, "cobsId": comet.cobs_id, "name": comet.name, "fullname": comet.fullname,
        "mpcName": comet.mpc_name, "icqName": comet.icq_name, "type": comet.type,
        "component": comet.component, "currentMagnitude": comet.current_magnitude,
        "perihelionDate": _iso(comet.perihelion_date),
        "perihelionMagnitude": comet.perihelion_magnitude,
        "peakMagnitude": comet.peak_magnitude, "peakDate": _iso(comet.peak_date),
        "isObserved": comet.is_observed, "isActive": comet.is_active,
        "firstSeen": _iso(comet.first_seen), "lastSeen": _iso(comet.last_seen),
        "source": comet.source,
    }  # fmt: skip


@api_view({"GET": API_READ})
def comets(request: HttpRequest) -> HttpResponse:
    """`?maxMagnitude=12&active=true&page=2`: each filter optional; 400 naming a bad one."""
    max_magnitude, active, page = _query(request)
    queryset = Comet.objects.all()
    if max_magnitude is not None:
        queryset = queryset.filter(current_magnitude__lte=max_magnitude)
    if active is not None:
        queryset = queryset.filter(is_active=active)
    count = queryset.count()
    rows = queryset.order_by("current_magnitude", "name")[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    return JsonResponse({
        "count": count, "page": page, "pages": math.ceil(count / PAGE_SIZE),
        "pageSize": PAGE_SIZE, "comets": [comet_json(c) for c in rows],
    })  # fmt: skip
