"""Schedule patterns: cron (5 fields, or 6 with a leading seconds field), every N, once at T.

Each pattern answers two questions for the beat: the latest due time at or before now,
and the next one after. Times are aware UTC datetimes; cron fields are read in the
schedule's own time zone.

Every entry point (install_schedule, the `schedule-recurring` job type, the admin form,
default_schedule) goes through parse_kind, which also refuses what would never fire: a cron
with no date in the next HORIZON_YEARS years (`0 0 30 2 *`, February 30th), an interval
longer than that, a one-off time outside EARLIEST..LATEST. The beat reads patterns from
the database with the plain parsers (an old row may predate these checks): a pattern that
cannot be computed raises InvalidSchedule there, never croniter's own errors.

Daylight saving: cron fields describe wall-clock times. We iterate wall-clock times and
map each to one instant, the first if the wall time happens twice (a fall-back night) and
the shifted one if it does not exist (a spring-forward night), so a daily 01:30 fires
exactly once on both transition days.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from tasks.errors import JobyardError

FIELDS_5 = ("minute", "hour", "day of month", "month", "day of week")
FIELDS_6 = ("second", *FIELDS_5)
_UNITS_MS = {"ms": 1, "s": 1000, "sec": 1000, "min": 60_000, "m": 60_000, "h": 3_600_000}
#: A repeating pattern is accepted if it fires within this many years of now.
HORIZON_YEARS = 10
_HORIZON = timedelta(days=366 * HORIZON_YEARS)
#: One-off times are accepted in this range: any zone can show them without overflowing.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9998, 12, 31, tzinfo=UTC)


class InvalidSchedule(JobyardError, ValueError):
    """A pattern, zone or time that cannot be a schedule; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidSchedule("timezone", f"unknown time zone {name!r}") from None


def _instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """The one instant of a wall-clock time: the first of two, or the shifted one of none."""
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


@dataclass(frozen=True)
class Cron:
    expression: str
    tz: ZoneInfo

    @property
    def has_seconds(self) -> bool:
        return len(self.expression.split()) == 6

    def _iter(self, start_wall: datetime) -> croniter:
        return croniter(self.expression, start_wall, second_at_beginning=self.has_seconds)

    def _margin(self, at: datetime) -> timedelta:
        """How far to start before (or after) a wall time: a DST change within three hours
        makes the wall clock jump, so iterate from further away; otherwise not at all
        (a pattern due every second would iterate 10,800 times for nothing)."""
        window = timedelta(hours=3)
        if self.tz.utcoffset(at - window) == self.tz.utcoffset(at + window):
            return timedelta(0)
        return window

    def _never(self) -> InvalidSchedule:
        return InvalidSchedule("pattern", f"{self.expression!r} never fires: no date matches it")

    def next_after(self, after: datetime) -> datetime | None:
        """The first run after `after`; None past the last representable date."""
        try:
            wall = after.astimezone(self.tz).replace(tzinfo=None)
            # On a fall-back night the wall clock runs backwards: start earlier there.
            it = self._iter(wall - self._margin(after))
            for _ in range(100_000):
                candidate = _instant(it.get_next(datetime), self.tz)
                if candidate > after:
                    return candidate
        except CroniterError:  # croniter found no date (`0 0 30 2 *`)
            raise self._never() from None
        except OverflowError:  # past year 9999
            return None
        raise self._never()

    def latest_at_or_before(self, now: datetime) -> datetime | None:
        try:
            wall = now.astimezone(self.tz).replace(tzinfo=None)
            it = self._iter(wall + self._margin(now) + timedelta(seconds=1))
            for _ in range(100_000):
                candidate = _instant(it.get_prev(datetime), self.tz)
                if candidate <= now:
                    return candidate
        except CroniterError:
            raise self._never() from None
        except OverflowError:  # before year 1
            return None
        return None

    def __str__(self) -> str:
        return self.expression


@dataclass(frozen=True)
class Every:
    every_ms: int
    #: Runs fall on anchor + k * every: the same instants whichever beat computes them.
    anchor: datetime

    def latest_at_or_before(self, now: datetime) -> datetime | None:
        if now < self.anchor:
            return None
        steps = int((now - self.anchor) / timedelta(milliseconds=self.every_ms))
        return self.anchor + timedelta(milliseconds=self.every_ms * steps)

    def next_after(self, after: datetime) -> datetime:
        latest = self.latest_at_or_before(after)
        if latest is None:
            return self.anchor
        return latest + timedelta(milliseconds=self.every_ms)

    def __str__(self) -> str:
        for unit, size in (("h", 3_600_000), ("min", 60_000), ("s", 1000)):
            if self.every_ms % size == 0:
                return f"every {self.every_ms // size}{unit}"
        return f"every {self.every_ms}ms"


@dataclass(frozen=True)
class Once:
    at: datetime

    def latest_at_or_before(self, now: datetime) -> datetime | None:
        return self.at if self.at <= now else None

    def next_after(self, after: datetime) -> datetime | None:
        return self.at if self.at > after else None

    def __str__(self) -> str:
        return f"once at {self.at.isoformat()}"


Pattern = Cron | Every | Once


def parse_cron(expression: str, tz: ZoneInfo | str) -> Cron:
    """A 5-field cron, or 6 with a leading seconds field; errors name the bad field."""
    tz = zone(tz) if isinstance(tz, str) else tz
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise InvalidSchedule(
            "pattern", f"a cron pattern has 5 fields (6 with seconds first), not {len(fields)}"
        )
    names = FIELDS_6 if len(fields) == 6 else FIELDS_5
    for position, (name, value) in enumerate(zip(names, fields, strict=True)):
        alone = ["*"] * len(fields)
        alone[position] = value
        if not croniter.is_valid(" ".join(alone), second_at_beginning=len(fields) == 6):
            raise InvalidSchedule(f"pattern ({name})", f"{value!r} is not a valid {name} field")
    normalised = " ".join(fields)
    if not croniter.is_valid(normalised, second_at_beginning=len(fields) == 6):
        raise InvalidSchedule("pattern", f"{expression!r} is not a valid cron pattern")
    return Cron(normalised, tz)


def parse_every(text: str | int, anchor: datetime) -> Every:
    """`every 30s`, `500ms`, `5min`, `2h`, or a number of milliseconds."""
    if isinstance(text, int) and not isinstance(text, bool):
        every_ms = text
    else:
        match = re.fullmatch(r"\s*(?:every\s+)?(\d+)\s*(ms|s|sec|min|m|h)\s*", str(text))
        if not match:
            raise InvalidSchedule(
                "every", f"{text!r} is not an interval such as 500ms, 30s, 5min or 2h"
            )
        every_ms = int(match.group(1)) * _UNITS_MS[match.group(2)]
    if every_ms < 100:
        raise InvalidSchedule("every", "an interval is at least 100 ms")
    if every_ms > _HORIZON / timedelta(milliseconds=1):
        raise InvalidSchedule("every", f"an interval is at most {HORIZON_YEARS} years")
    return Every(every_ms, anchor)


def parse_at(value: str | datetime) -> Once:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidSchedule("at", f"{value!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise InvalidSchedule("at", "a one-off time needs a zone offset (Z or +01:00)")
    try:
        at = value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
        at = None
    if at is None or not EARLIEST <= at <= LATEST:
        raise InvalidSchedule(
            "at", f"{value.isoformat()} is out of range: a one-off time lies between"
            f" {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC)",
        )  # fmt: skip
    return Once(at)


def split_pattern(text: str) -> dict[str, str]:
    """The one-string form `schedule-recurring` takes, as install_schedule's keyword:
    `every 30s` -> every, `at <ISO time>` -> at, anything else -> cron."""
    text = text.strip()
    if text.startswith("every "):
        return {"every": text}
    if text.startswith("at "):
        return {"at": text[3:].strip()}
    return {"cron": text}


def parse_kind(
    kind: str,
    value: str | int | datetime,
    tz: ZoneInfo | str,
    anchor: datetime,
    now: datetime | None = None,
) -> Pattern:
    """A `cron`, `every` or `at` pattern, refused (InvalidSchedule naming the field) if it
    is malformed or would never fire: a repeating pattern must fire within HORIZON_YEARS
    of `now`. The one check of every way in: install_schedule, `schedule-recurring`, the
    admin form, default_schedule."""
    if kind == "cron":
        pattern: Pattern = parse_cron(str(value), tz)
    elif kind == "every":
        pattern = parse_every(value if isinstance(value, int) else str(value), anchor)
    elif kind == "at":
        return parse_at(value if isinstance(value, datetime) else str(value))  # range checked
    else:
        raise InvalidSchedule("pattern", f"unknown kind of pattern {kind!r}")
    now = now or datetime.now(UTC)
    try:
        upcoming = pattern.next_after(now)
    except OverflowError:
        upcoming = None
    if upcoming is None or upcoming - now > _HORIZON:
        raise InvalidSchedule(
            "pattern", f"{str(pattern)!r} never fires: no run in the next {HORIZON_YEARS} years"
        )
    return pattern


def parse_pattern(text: str, tz: ZoneInfo | str, anchor: datetime,
                  now: datetime | None = None) -> Pattern:  # fmt: skip
    """Parse and check the one-string form (see split_pattern and parse_kind)."""
    ((kind, value),) = split_pattern(text).items()
    return parse_kind(kind, value, tz, anchor, now)
