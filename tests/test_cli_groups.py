"""`manage.py jobs` for groups and deduplication: trigger's options, groups, group-pause,
group-resume, group-limits; bad input names the flag and exits 2."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tasks import Queue, get_job

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE = "catalog"


def jobs(*args: str) -> str:
    out = StringIO()
    call_command("jobs", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def fails(*args: str) -> CommandError:
    with pytest.raises(CommandError) as caught:
        jobs(*args)
    return caught.value


def test_trigger_takes_a_group_and_the_windows():
    sent = json.loads(jobs("trigger", "t-echo.catalog", "--group", "tenant-1", "--json"))
    assert get_job(QUEUE, sent["jobId"]).opts["group"] == "tenant-1"
    args = ("trigger", "t-echo.catalog", "--dedupe-key", "k", "--dedupe-ttl", "60000", "--json")
    first, again = json.loads(jobs(*args)), json.loads(jobs(*args))
    assert again["jobId"] == first["jobId"] and again["created"] is False
    args = ("trigger", "t-echo.catalog", "--debounce-key", "d", "--debounce-delay", "60000")
    assert "delayed" in jobs(*args, "--param", "value=1")
    assert "existing job" in jobs(*args, "--param", "value=2")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("trigger", "t-echo.catalog", "--dedupe-key", "k"), "--dedupe-ttl"),
        (("trigger", "t-echo.catalog", "--debounce-delay", "5"), "--debounce-key"),
        (("trigger", "t-echo.catalog", "--group", "a b"), "group"),
        (("trigger", "t-echo.catalog", "--debounce-key", "d", "--debounce-delay", "0"), "delay"),
        (("group-limits", QUEUE, "--concurrency", "-1"), "concurrency"),
        (("group-limits", QUEUE, "--rate", "ten"), "--rate"),
        (("group-pause", QUEUE, "a b"), "group"),
    ],
)
def test_bad_input_names_the_field_and_exits_2(args, named):
    error = fails(*args)
    assert error.returncode == 2 and named in str(error), str(error)
    assert Queue(QUEUE).groups()["groups"] == []


def test_groups_pause_resume_and_limits():
    jobs("trigger", "t-echo.catalog", "--group", "tenant-1")
    assert "paused group tenant-1" in jobs("group-pause", QUEUE, "tenant-1")
    text = jobs("group-limits", QUEUE, "--concurrency", "2", "--rate", "100/60000")
    assert "defaults: concurrency 2, rate 100/60000ms" in text
    text = jobs("groups", QUEUE)
    assert "tenant-1" in text and "yes" in text
    listing = json.loads(jobs("groups", QUEUE, "--json"))
    assert listing["groups"][0] | {"group": "tenant-1"} == {
        "group": "tenant-1", "waiting": 1, "active": 0, "paused": True, "concurrency": None,
        "rate_limit": None}  # fmt: skip
    jobs("group-resume", QUEUE, "tenant-1")
    jobs("group-limits", QUEUE, "tenant-1", "--concurrency", "0")
    (row,) = Queue(QUEUE).groups(["tenant-1"])["groups"]
    assert (row["paused"], row["concurrency"]) == (False, 0)
