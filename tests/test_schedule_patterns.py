"""Cron (5 and 6 fields), intervals, one-offs, time zones and both DST transitions."""

from datetime import UTC, datetime, timedelta

import pytest

from tasks.scheduling.patterns import (
    InvalidSchedule,
    parse_at,
    parse_cron,
    parse_every,
    parse_kind,
    parse_pattern,
)
from tasks.scheduling.service import Spec

pytestmark = pytest.mark.pure


def fires(pattern, start: datetime, count: int) -> list[str]:
    out, t = [], start
    for _ in range(count):
        t = pattern.next_after(t)
        out.append(t.astimezone(getattr(pattern, "tz", UTC)).isoformat())
    return out


def test_a_daily_0130_fires_once_on_both_new_york_transition_days():
    daily = parse_cron("30 1 * * *", "America/New_York")
    # 2026-11-01: clocks fall back at 02:00, so 01:30 happens twice; it fires once.
    assert fires(daily, datetime(2026, 10, 31, 12, tzinfo=UTC), 3) == [
        "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00", "2026-11-03T01:30:00-05:00"]  # fmt: skip
    # 2026-03-08: clocks spring forward at 02:00; 01:30 happens once.
    assert fires(daily, datetime(2026, 3, 7, 12, tzinfo=UTC), 2) == [
        "2026-03-08T01:30:00-05:00", "2026-03-09T01:30:00-04:00"]  # fmt: skip


def test_a_time_that_does_not_exist_fires_once_shifted_and_a_doubled_one_once():
    berlin = parse_cron("30 2 * * *", "Europe/Berlin")
    # 2026-03-29 02:30 does not exist (02:00 -> 03:00): it fires once, at 03:30.
    assert fires(berlin, datetime(2026, 3, 28, 12, tzinfo=UTC), 2) == [
        "2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"]  # fmt: skip
    # 2026-10-25 02:30 happens twice (03:00 -> 02:00): it fires once, the first time.
    assert fires(berlin, datetime(2026, 10, 24, 12, tzinfo=UTC), 2) == [
        "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]  # fmt: skip


def test_the_latest_run_on_a_fall_back_night_is_the_first_0130():
    daily = parse_cron("30 1 * * *", "America/New_York")
    second_pass = datetime(2026, 11, 1, 6, 45, tzinfo=UTC)  # 01:45 EST, after the 2nd 01:30
    assert daily.latest_at_or_before(second_pass) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


def test_a_six_field_pattern_has_a_leading_seconds_field():
    every_10s = parse_cron("*/10 * * * * *", "UTC")
    start = datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)
    assert every_10s.next_after(start) == start + timedelta(seconds=5)
    assert every_10s.latest_at_or_before(start + timedelta(seconds=20)) == start + timedelta(
        seconds=15
    )


@pytest.mark.parametrize(
    ("pattern", "field"),
    [("61 * * * *", "minute"), ("* 25 * * *", "hour"), ("* * 32 * *", "day of month"),
     ("* * * 13 *", "month"), ("* * * * funday", "day of week"), ("*/0 * * * * *", "second"),
     ("* * * *", "pattern"), ("1 2 3 4 5 6 7", "pattern")],
)  # fmt: skip
def test_it_refuses_an_invalid_pattern_naming_the_field(pattern, field):
    with pytest.raises(InvalidSchedule) as caught:
        parse_cron(pattern, "UTC")
    assert field in caught.value.field


def test_it_refuses_an_unknown_zone_an_interval_too_short_and_a_naive_time():
    with pytest.raises(InvalidSchedule, match="timezone"):
        parse_cron("0 0 * * *", "Mars/Olympus")
    with pytest.raises(InvalidSchedule, match="every"):
        parse_every("every 10ms", datetime.now(UTC))
    with pytest.raises(InvalidSchedule, match="every"):
        parse_every("every fortnight", datetime.now(UTC))
    with pytest.raises(InvalidSchedule, match="zone offset"):
        parse_at("2030-01-01T00:00:00")


def test_intervals_fall_on_fixed_instants_whoever_computes_them():
    anchor = datetime(2026, 1, 1, tzinfo=UTC)
    every = parse_every("every 1500ms", anchor)
    now = anchor + timedelta(seconds=10, milliseconds=700)
    assert every.latest_at_or_before(now) == anchor + timedelta(seconds=10, milliseconds=500)
    assert every.next_after(now) == anchor + timedelta(seconds=12)
    assert str(parse_every("every 5min", anchor)) == "every 5min"


def test_a_one_off_is_due_once_its_time_has_come():
    once = parse_at("2030-01-01T00:00:00Z")
    assert once.latest_at_or_before(datetime(2029, 12, 31, tzinfo=UTC)) is None
    assert once.next_after(datetime(2029, 12, 31, tzinfo=UTC)) == datetime(2030, 1, 1, tzinfo=UTC)
    assert once.next_after(datetime(2030, 1, 2, tzinfo=UTC)) is None


@pytest.mark.parametrize("pattern", ["0 0 30 2 *", "0 0 31 4 *", "*/5 0 0 30 2 *"])
def test_a_cron_that_never_fires_is_refused_naming_the_pattern(pattern):
    with pytest.raises(InvalidSchedule, match="never fires") as caught:
        parse_pattern(pattern, "UTC", datetime.now(UTC))
    assert caught.value.field == "pattern"


def test_a_rare_cron_is_accepted_even_across_a_century_without_leap_day():
    # 2100 is no leap year: from March 2097 the next February 29th is in 2104.
    start = datetime(2097, 3, 1, tzinfo=UTC)
    leap_day = parse_pattern("0 0 29 2 *", "UTC", start, now=start)
    assert leap_day.next_after(start) == datetime(2104, 2, 29, tzinfo=UTC)


def test_computing_a_cron_that_never_fires_raises_invalid_schedule_not_croniters_error():
    """What the beat does with an old row that predates the check."""
    never = parse_cron("0 0 30 2 *", "UTC")  # parses: each field alone is valid
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidSchedule, match="never fires"):
        never.next_after(now)
    with pytest.raises(InvalidSchedule, match="never fires"):
        never.latest_at_or_before(now)


@pytest.mark.parametrize(
    "text",
    ["at 0001-01-01T00:00:00+01:00", "at 9999-12-31T23:59:59-01:00", "at 0001-01-01T00:00:00Z",
     "at 1969-12-31T23:59:59Z", "at 9999-06-01T00:00:00Z"],
)  # fmt: skip
def test_a_one_off_time_out_of_range_is_refused_not_an_overflow(text):
    with pytest.raises(InvalidSchedule, match="out of range") as caught:
        parse_pattern(text, "UTC", datetime.now(UTC))
    assert caught.value.field == "at"


def test_an_interval_longer_than_the_horizon_is_refused():
    now = datetime.now(UTC)
    with pytest.raises(InvalidSchedule, match="at most 10 years"):
        parse_pattern("every 100000h", "UTC", now)
    with pytest.raises(InvalidSchedule, match="at most"):
        parse_every(10**18, now)
    assert parse_kind("every", "every 2h", "UTC", now).every_ms == 7_200_000


def test_every_way_in_checks_the_same():
    now = datetime.now(UTC)
    for kind, value in (("cron", "0 0 30 2 *"), ("at", "0001-01-01T00:00:00+01:00")):
        with pytest.raises(InvalidSchedule):
            parse_kind(kind, value, "UTC", now)
    with pytest.raises(InvalidSchedule, match="never fires"):
        Spec(cron="0 0 30 2 *").pattern(now)
    with pytest.raises(InvalidSchedule, match="out of range"):
        Spec(at="0001-01-01T00:00:00+01:00").pattern(now)
