"""The COBS comet list (https://cobs.si/help/cobs_api/comet_list_api/): fetch every page,
parse each object, upsert comets. Plain functions; catalog/jobs/comets.py is the job.

What the API answers, as it really is:
`{"objects": [...], "info": {"page": 1, "pages": 3, ...}, "signature": {"version": "1.3", ...}}`;
magnitudes are strings ("14.7", "" for none), timestamps UTC without a zone
("2022-12-19 13:29"), booleans true/false, and `cur-mag` takes an integer.

Errors are decided here, where they are raised (STYLE.md, lesson 4): `CobsError.permanent`
says whether a retry can help. A 5xx, a timeout or a refused connection can pass; a 4xx
will not, nor will JSON of another shape. An answer that is not JSON at all (a proxy's
error page) is worth another try.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from catalog.models import Comet

log = structlog.get_logger("jobyard.catalog.cobs")

#: The comet list's versions this parser was written against; another is warned about once.
KNOWN_VERSIONS = frozenset({"1.0", "1.1", "1.2", "1.3"})
#: Connect fast, but give COBS time to build a page of up to 5,000 comets.
TIMEOUT = httpx.Timeout(60.0, connect=10.0)
#: COBS pages hold up to 5,000 comets; this bounds a run that a broken `pages` would not end.
MAX_PAGES = 1000
SOURCE = "cobs"
#: The fields an import writes; `unchanged` means none of them differs.
DATA_FIELDS = (
    "cobs_id", "name", "fullname", "mpc_name", "icq_name", "type", "component",
    "current_magnitude", "perihelion_date", "perihelion_magnitude", "peak_magnitude",
    "peak_date", "is_observed", "is_active",
)  # fmt: skip

_warned_versions: set[str] = set()


class CobsError(Exception):
    """COBS could not give a page. `permanent`: no retry will change that."""

    permanent = False


class CobsUnavailable(CobsError):
    """A 5xx, a timeout, a connection refused: worth another try."""


class CobsRefused(CobsError):
    """A 4xx: the request itself is wrong (or the endpoint gone)."""

    permanent = True


class CobsBadAnswer(CobsError):
    """An answer that is not the comet list. `permanent` when it is JSON of another shape."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class BadObject(ValueError):
    """One object of a page that cannot be read as a comet."""


# --- parsing ------------------------------------------------------------------------------


def parse_magnitude(value: Any, name: str) -> float | None:
    """ "14.7" -> 14.7; "" or null -> None; anything else that is not a finite number: BadObject."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise BadObject(f"{name}: {value!r} is not a magnitude")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise BadObject(f"{name}: {value!r} is not a magnitude") from None
    if not math.isfinite(number):
        raise BadObject(f"{name}: {value!r} is not a magnitude")
    return number


def parse_timestamp(value: Any, name: str) -> datetime | None:
    """A UTC time without a zone ("2022-12-19 13:29", "2022-12-19 13:29:05", "2022-12-19",
    "2022-12-19T13:29:05"), as an aware UTC datetime; one with a zone is converted; "",
    null and MySQL's zero date ("0000-00-00 00:00") are None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise BadObject(f"{name}: {value!r} is not a timestamp")
    text = value.strip()
    if text.startswith("0000-00-00"):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadObject(f"{name}: {value!r} is not a timestamp") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1) and isinstance(value, int):
        return bool(value)
    if value is None:
        return False
    raise BadObject(f"{name}: {value!r} is not true or false")


def _text(obj: dict[str, Any], key: str, limit: int, required: bool = False) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise BadObject(f"{key}: missing")
        return ""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise BadObject(f"{key}: {value!r} is not text")
    text = str(value).strip()
    if required and not text:
        raise BadObject(f"{key}: empty")
    if len(text) > limit:
        raise BadObject(f"{key}: longer than {limit} characters")
    return text


def parse_comet(obj: Any) -> dict[str, Any]:
    """One object of the list as Comet's fields (DATA_FIELDS), or BadObject saying why."""
    if not isinstance(obj, dict):
        raise BadObject(f"not an object: {obj!r}"[:200])
    cobs_id = obj.get("id") if obj.get("id") is not None else obj.get("pk")  # `pk` in 1.0
    if isinstance(cobs_id, bool) or not isinstance(cobs_id, int) or cobs_id < 0:
        raise BadObject(f"id: {cobs_id!r} is not a COBS id")
    return {
        "cobs_id": cobs_id,
        "name": _text(obj, "name", 100, required=True),
        "fullname": _text(obj, "fullname", 200),
        "mpc_name": _text(obj, "mpc_name", 50),
        "icq_name": _text(obj, "icq_name", 50),
        "type": _text(obj, "type", 2),
        "component": _text(obj, "component", 20),
        "current_magnitude": parse_magnitude(obj.get("current_mag"), "current_mag"),
        "perihelion_date": parse_timestamp(obj.get("perihelion_date"), "perihelion_date"),
        "perihelion_magnitude": parse_magnitude(obj.get("perihelion_mag"), "perihelion_mag"),
        "peak_magnitude": parse_magnitude(obj.get("peak_mag"), "peak_mag"),
        "peak_date": parse_timestamp(obj.get("peak_mag_date"), "peak_mag_date"),
        "is_observed": parse_bool(obj.get("is_observed"), "is_observed"),
        "is_active": parse_bool(obj.get("is_active", True), "is_active"),
    }


# --- fetching -----------------------------------------------------------------------------


def cur_mag(max_magnitude: float) -> int:
    """COBS's `cur-mag` is an integer: ask for the next one up, and skip what is fainter."""
    return math.ceil(max_magnitude)


def fetch_page(client: httpx.Client, url: str, max_magnitude: float, page: int) -> dict[str, Any]:
    """One page of the list, checked for its shape; CobsError otherwise."""
    params = {"cur-mag": cur_mag(max_magnitude), "is-active": "true", "page": page}
    try:
        response = client.get(url, params=params)
    except httpx.TimeoutException as exc:
        raise CobsUnavailable(f"COBS page {page}: timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise CobsUnavailable(f"COBS page {page}: {type(exc).__name__}: {exc}") from exc
    status = response.status_code
    if status >= 500:
        raise CobsUnavailable(f"COBS page {page}: HTTP {status}")
    if status >= 400:
        raise CobsRefused(f"COBS page {page}: HTTP {status} for {response.request.url}")
    if status != 200:
        raise CobsBadAnswer(f"COBS page {page}: unexpected HTTP {status}")
    try:
        body = response.json()
    except ValueError:
        kind = response.headers.get("content-type", "no content type")
        raise CobsBadAnswer(
            f"COBS page {page}: the answer is not JSON ({kind}): {response.text[:80]!r}"
        ) from None
    if not isinstance(body, dict) or not isinstance(body.get("objects"), list):
        raise CobsBadAnswer(f"COBS page {page}: JSON without an `objects` list", permanent=True)
    info = body.get("info")
    if info is not None and not isinstance(info, dict):
        raise CobsBadAnswer(f"COBS page {page}: `info` is not an object", permanent=True)
    return body


def check_version(body: dict[str, Any]) -> None:
    """Warn, once per process and version, about a version this parser does not know."""
    signature = body.get("signature")
    version = signature.get("version") if isinstance(signature, dict) else None
    version = str(version) if version is not None else "(none)"
    if version not in KNOWN_VERSIONS and version not in _warned_versions:
        _warned_versions.add(version)
        log.warning("cobs_unknown_version", version=version, known=sorted(KNOWN_VERSIONS))


def page_count(body: dict[str, Any], page: int) -> int:
    pages = (body.get("info") or {}).get("pages")
    if isinstance(pages, bool) or not isinstance(pages, int) or pages < 0:
        # No `info` (version 1.0 had none): this page is all there is.
        return page
    return min(pages, MAX_PAGES)


def pages(client: httpx.Client, url: str, max_magnitude: float) -> Iterator[tuple[int, int, dict]]:
    """(page, pages, body) for every page of the list, page 1 first."""
    page, total = 1, 1
    while page <= total:
        body = fetch_page(client, url, max_magnitude, page)
        check_version(body)
        total = page_count(body, page)
        yield page, max(total, page), body
        page += 1


# --- storing ------------------------------------------------------------------------------


@dataclass
class Tally:
    pages: int = 0
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    errors: int = 0
    deactivated: int = 0
    error_samples: list[str] = field(default_factory=list)
    #: Every comet the list named, by COBS id and by name: parsed, skipped or unreadable.
    listed_ids: set[int] = field(default_factory=set)
    listed_names: set[str] = field(default_factory=set)
    #: An object with neither a readable id nor a name: who is missing cannot be told.
    anonymous: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"pages": self.pages, "imported": self.imported, "updated": self.updated,
                "unchanged": self.unchanged, "skipped": self.skipped, "errors": self.errors,
                "deactivated": self.deactivated}  # fmt: skip

    def mention(self, obj: Any) -> None:
        found = False
        if isinstance(obj, dict):
            ident = obj.get("id") if obj.get("id") is not None else obj.get("pk")
            if isinstance(ident, int) and not isinstance(ident, bool):
                self.listed_ids.add(ident)
                found = True
            if isinstance(obj.get("name"), str) and obj["name"].strip():
                self.listed_names.add(obj["name"].strip())
                found = True
        if not found:
            self.anonymous += 1


def store_page(objects: list[Any], max_magnitude: float, tally: Tally, page: int = 1) -> None:
    """Upsert one page's comets in one transaction: matched by COBS id, else by name."""
    parsed: dict[int, dict[str, Any]] = {}
    for index, obj in enumerate(objects):
        tally.mention(obj)
        try:
            fields = parse_comet(obj)
        except BadObject as exc:
            tally.errors += 1
            ident = obj.get("id", obj.get("name")) if isinstance(obj, dict) else None
            log.warning("cobs_object_unparsable", page=page, index=index, id=ident, error=str(exc))
            continue
        magnitude = fields["current_magnitude"]
        if magnitude is not None and magnitude > max_magnitude:
            tally.skipped += 1  # cur-mag is an integer: 12 asks for up to 12.x
            continue
        if fields["cobs_id"] in parsed:
            tally.skipped += 1  # the same comet twice in a page: the first one counts
            continue
        parsed[fields["cobs_id"]] = fields
    if not parsed:
        return
    now = timezone.now()
    with transaction.atomic():
        by_id = {c.cobs_id: c for c in Comet.objects.select_for_update().filter(cobs_id__in=parsed)}
        names = [f["name"] for i, f in parsed.items() if i not in by_id]
        by_name = {c.name: c for c in Comet.objects.select_for_update().filter(name__in=names)}
        new, changed, seen = [], [], []
        for cobs_id, fields in parsed.items():
            comet = by_id.get(cobs_id) or by_name.get(fields["name"])
            if comet is None:
                new.append(Comet(**fields, first_seen=now, last_seen=now, source=SOURCE))
                continue
            seen.append(comet.pk)
            if all(getattr(comet, name) == value for name, value in fields.items()):
                tally.unchanged += 1
                continue
            for name, value in fields.items():
                setattr(comet, name, value)
            changed.append(comet)
        Comet.objects.bulk_update(changed, DATA_FIELDS, batch_size=500)
        Comet.objects.bulk_create(new, batch_size=500)
        # Bookkeeping, not data: one UPDATE for every comet this page found again.
        Comet.objects.filter(pk__in=seen).update(last_seen=now, source=SOURCE)
    tally.imported += len(new)
    tally.updated += len(changed)


def deactivate_missing(max_magnitude: float, tally: Tally) -> int:
    """After a complete run (every page read): comets the list did not name, though their
    last known magnitude is within the run's limit, are no longer active; the count.

    The list is COBS's *active* comets up to a magnitude, so a comet missing from it is
    inactive or fainter than the limit now; only the first can be told apart, and only for
    comets the limit covered as far as we know: a run at maxMagnitude 10 says nothing of a
    comet last seen at 13, nor of one whose magnitude was never known (left as they are).
    A comet that merely faded past the limit comes back active with the next run that
    covers it (its row says what COBS says); cleanup deletes only comets both inactive and
    not seen for `daysOld` days. A run that named no comet at all, or an object without a
    readable id or name, deactivates nothing: who is missing cannot be told.
    """
    if tally.anonymous or not (tally.listed_ids or tally.listed_names):
        return 0
    missing = (
        Comet.objects.filter(is_active=True, source=SOURCE, current_magnitude__lte=max_magnitude)
        .exclude(cobs_id__in=tally.listed_ids)
        .exclude(name__in=tally.listed_names)
    )
    return missing.update(is_active=False)


def update_comets(
    max_magnitude: float = 15.0,
    *,
    url: str | None = None,
    on_page: Callable[[int, int], None] | None = None,
    client: httpx.Client | None = None,
) -> dict[str, int]:
    """Fetch every page of the COBS comet list up to `max_magnitude` and upsert each page,
    then mark inactive the comets a complete run did not find (deactivate_missing); returns
    `{pages, imported, updated, unchanged, skipped, errors, deactivated}`."""
    url = url or settings.COBS_API_URL
    tally = Tally()
    own = client is None
    client = client or httpx.Client(
        timeout=TIMEOUT, follow_redirects=True, headers={"User-Agent": "Jobyard catalog"}
    )
    complete = True
    try:
        for page, total, body in pages(client, url, max_magnitude):
            store_page(body["objects"], max_magnitude, tally, page)
            tally.pages += 1
            reported = (body.get("info") or {}).get("pages")
            if isinstance(reported, int) and reported > MAX_PAGES:
                complete = False  # the list was cut at MAX_PAGES: not every comet was read
            if on_page is not None:
                on_page(page, total)
    finally:
        if own:
            client.close()
    if complete:
        tally.deactivated = deactivate_missing(max_magnitude, tally)
    log.info("comets_updated", max_magnitude=max_magnitude, **tally.as_dict())
    return tally.as_dict()
