"""The acceptance: the docs' curl commands that name the comet jobs, their schedule or the
catalog (docs/api.md, docs/catalog.md), run as written with curl against gunicorn as the
Procfile runs it, a real worker on the catalog queue and the fake COBS."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command

from catalog.models import Comet
from tasks import enqueue, get_job
from tests.catalog import fake_cobs as fake

DOCS = Path(__file__).resolve().parents[2] / "docs"
#: Which commands are the comets' (the event stream, -N, never ends: left out; the
#: imports' are test_imports.py's).
MENTIONS = re.compile(r"update-comets|comets-weekly|schedule-recurring-comets|/catalog")


def curl_commands(doc: str) -> list[str]:
    """Each curl command of the doc's sh blocks that names the comets, lines joined."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", (DOCS / doc).read_text(), re.S):
        for command in block.replace("\\\n", " ").splitlines():
            command = command.split(" # ")[0].strip()
            if (command.startswith("curl ") and MENTIONS.search(command)
                    and " -sN " not in command and "/catalog/imports" not in command):  # fmt: skip
                commands.append(command)
    return commands


def run(command: str, env: dict[str, str]) -> tuple[int, dict]:
    """The command as written, with `-w` to learn its status."""
    done = subprocess.run(["bash", "-c", command + " -w '\\n%{http_code}'"], env=env,
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    body, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(body)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_docs_curl_commands_for_comets_are_true(catalog_worker, fake_cobs, start_gunicorn,
                                                     make_token):  # fmt: skip
    server = start_gunicorn(threads=2)
    env = {**os.environ, "JY": f"http://127.0.0.1:{server.port}", "TOKEN": make_token("write")}
    call_command("setup_schedules", stdout=io.StringIO())
    # docs/api.md follows one job, `comets-weekly`: a refresh given that id.
    job = enqueue("update-comets", {"maxMagnitude": 15}, job_id="comets-weekly")
    assert job.wait_until_finished(timeout=60)["imported"] == fake.IMPORTED

    api_md = curl_commands("api.md")
    assert len(api_md) >= 7, api_md
    for command in api_md:
        status, body = run(command, env)
        if '"jobType": "update-comets"' in command:
            assert status == 202 and body["queue"] == "catalog", body
        elif "/retry" in command:  # the job completed: 409, as documented
            assert status == 409 and body["error"]["code"] == "invalid_job_state", body
        elif "-sX DELETE" in command:
            assert status == 200 and body == {"jobId": "comets-weekly", "queue": "catalog",
                                              "removed": True}  # fmt: skip
        elif "jobId=comets-weekly" in command or "/jobs/catalog/comets-weekly" in command:
            assert status == 200, body
            found = body.get("job", body)
            assert found["id"] == "comets-weekly" and found["name"] == "update-comets", body
            assert found["returnvalue"]["imported"] == fake.IMPORTED
        elif command.startswith("curl -s $JY/api/v1/queues/catalog -H"):
            assert status == 200, body
            (weekly,) = [s for s in body["scheduled"] if s["key"] == "comets-weekly"]
            assert (weekly["jobType"], weekly["pattern"]) == ("update-comets", "0 0 * * 0")
        else:
            assert status == 200, (command, body)

    catalog_md = curl_commands("catalog.md")
    assert len(catalog_md) == 5, catalog_md
    for command in catalog_md:
        status, body = run(command, env)
        if "jobs/trigger" in command:
            assert status == 202, body
            job = get_job(body["queue"], body["jobId"])  # followed to its end
            assert job.wait_until_finished(timeout=60) is not None
        elif "maxMagnitude=bright" in command:
            assert status == 400 and body["error"]["fields"][0]["field"] == "maxMagnitude"
        elif "/catalog/comets" in command:
            assert status == 200 and body["count"] == 4, body  # unknown magnitudes left out
            assert body["comets"][0]["name"] == "C/2024 G3"
        else:
            assert status == 200, body
            (weekly,) = [s for s in body["scheduled"] if s["key"] == "comets-weekly"]
            assert weekly["pattern"] == "0 0 * * 0"
    assert Comet.objects.count() == fake.IMPORTED
