"""bench/celery_suite.py's reading of a run: junit XML, streamed reports, the comparison.

The suite itself takes ~40 minutes and is run by hand (docs/celery-suite.md); these check
only the parsing that its figures rest on.
"""

import json

import pytest

from bench import celery_suite as suite

pytestmark = pytest.mark.pure

FILES = ["test_tasks.py", "test_canvas.py"]

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="6">
 <testcase classname="t.integration.test_tasks.test_tasks" name="test_retry"
   file="t/integration/test_tasks.py" line="488" time="31.5"/>
 <testcase classname="t.integration.test_tasks.test_tasks" name="test_revoked"
   file="t/integration/test_tasks.py" line="395" time="22.5">
   <failure message="Failed: Timeout (&gt;20.0s) from pytest-timeout.&#10;more">tb</failure>
 </testcase>
 <testcase classname="t.integration.test_tasks.test_tasks" name="test_accepted"
   file="t/integration/test_tasks.py" line="600" time="0.0">
   <skipped type="pytest.skip" message="Randomly fails">skip</skipped>
 </testcase>
 <testcase classname="t.integration.test_canvas.test_chord" name="test_flag"
   file="t/integration/test_canvas.py" line="3500" time="285">
   <failure message="TimeoutError: waited">a</failure><failure message="assert 2 == 1">b</failure>
 </testcase>
 <testcase classname="t.integration.test_canvas.test_chord" name="test_propagates"
   file="t/integration/test_canvas.py" line="2710" time="61">
   <skipped type="pytest.xfail" message="Issue #6437">x</skipped>
 </testcase>
 <testcase classname="t.integration.test_canvas" name="test_module_level"
   file="t/integration/test_canvas.py" line="10" time="1"/>
</testsuite></testsuites>
"""


def test_junit_outcomes_ids_and_first_lines(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    tests = suite.parse_junit(path, FILES)
    assert {k: v["outcome"] for k, v in tests.items()} == {
        "test_tasks.py::test_tasks::test_retry": "passed",
        "test_tasks.py::test_tasks::test_revoked": "failed",
        "test_tasks.py::test_tasks::test_accepted": "skipped",
        "test_canvas.py::test_chord::test_flag": "failed",
        "test_canvas.py::test_chord::test_propagates": "xfailed",
        "test_canvas.py::test_module_level": "passed",
    }
    assert tests["test_tasks.py::test_tasks::test_revoked"]["message"] == (
        "Failed: Timeout (>20.0s) from pytest-timeout."
    )
    assert tests["test_canvas.py::test_chord::test_flag"]["message"] == "TimeoutError: waited"
    counted = suite.counts({"tests": tests}, FILES)
    assert counted["test_tasks.py"] | {"time_s": 0} == {
        "passed": 1, "failed": 1, "error": 0, "skipped": 1, "xfailed": 0, "tests": 3, "time_s": 0,
    }  # fmt: skip
    assert counted["total"]["tests"] == 6


def _reports(tmp_path, lines):
    path = tmp_path / "reports.jsonl"
    base = {"xfail": False, "duration": 1.0, "message": "", "subtest": False, "at": 0}
    path.write_text("".join(json.dumps(base | line) + "\n" for line in lines))
    return path


def test_streamed_reports_when_the_junit_is_missing(tmp_path):
    node = "t/integration/test_tasks.py::test_tasks::"
    path = _reports(
        tmp_path,
        [
            {"nodeid": node + "test_a", "when": "setup", "outcome": "passed"},
            {"nodeid": node + "test_a", "when": "call", "outcome": "passed", "duration": 2.0},
            {"nodeid": node + "test_a", "when": "teardown", "outcome": "passed"},
            {"nodeid": node + "test_b", "when": "call", "outcome": "failed", "message": "boom"},
            {"nodeid": node + "test_c", "when": "setup", "outcome": "failed", "message": "no"},
            {"nodeid": node + "test_d", "when": "setup", "outcome": "passed"},  # interrupted
            {
                "nodeid": node + "test_e",
                "when": "call",
                "outcome": "passed",
                "subtest": True,
                "duration": 50.0,
            },  # fmt: skip
            {"nodeid": node + "test_e", "when": "call", "outcome": "passed", "duration": 3.0},
        ],
    )
    tests = suite.parse_reports(path, FILES)
    outcomes = {k.rsplit("::", 1)[1]: v["outcome"] for k, v in tests.items()}
    assert outcomes == {
        "test_a": "passed", "test_b": "failed", "test_c": "error", "test_d": "not run",
        "test_e": "passed",
    }  # fmt: skip
    times = suite.durations(path)
    assert times["test_tasks.py::test_tasks::test_a"] == 4.0
    assert times["test_tasks.py::test_tasks::test_e"] == 3.0  # a subtest's time is not added


def test_differences_say_which_side_lost():
    def run(**outcomes):
        return {"tests": {k: {"outcome": v, "message": v} for k, v in outcomes.items()}}

    stock = run(a="passed", b="failed", c="passed", d="skipped")
    jobyard = run(a="failed", b="passed", c="passed")
    diffs = {d["test"]: d["verdict"] for d in suite.differences(stock, jobyard)}
    assert diffs == {"a": "jobyard worse", "b": "jobyard better", "d": "other"}
