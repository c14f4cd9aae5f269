"""A person's path through the admin, in headless Chromium (Debian's, driven by Playwright):
log in, open the dashboard, trigger a ping from the form, see it complete.

Screenshots land in test-artifacts/ (dashboard.png, trigger.png, job.png).
"""

import shutil
import tempfile
from pathlib import Path

import pytest
from django.db import connections
from playwright.sync_api import sync_playwright

from tasks import get_workers
from tests.conftest import BASE_DIR, drain_archive, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = BASE_DIR / "test-artifacts"


@pytest.fixture
def browser_page(monkeypatch):
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: bin/test installs Debian's chromium package")
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls
    # are still plain synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    profile = tempfile.mkdtemp(prefix="jobyard-chromium-")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=ARGS, headless=True,
            viewport={"width": 1400, "height": 900},
        )  # fmt: skip
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()
            # Inside Playwright's event loop Django keeps connections of their own (its
            # connections are per context): close them, or they outlive the test database.
            connections.close_all()
            shutil.rmtree(profile, ignore_errors=True)


def test_an_operator_logs_in_checks_the_dashboard_and_triggers_a_ping(
    live_server, browser_page, django_user_model, worker
):
    page = browser_page
    wait_for(get_workers, message="the worker's heartbeat")  # each test starts with no keys
    django_user_model.objects.create_superuser("operator", "op@example.com", "a-long-password-1")
    ARTIFACTS.mkdir(exist_ok=True)

    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "a-long-password-1")
    page.click("input[type=submit]")
    page.wait_for_selector("#jy-operations")

    page.click("#jy-ops >> text=Dashboard")
    page.wait_for_selector("#queue-default")
    assert page.locator(".jy-card").count() == 7
    assert page.locator("#queue-default .jy-badge").inner_text().lower() == "ok"
    assert page.locator("#queue-catalog .jy-badge").inner_text().lower() == "no workers"
    assert worker.name in page.locator("#jy-workers").inner_text()

    page.click("#jy-ops >> text=Trigger a job")
    page.select_option("#id_job_type", "ping")
    page.fill("#id_data", '{"sentAt": null}')
    page.click("#jy-send")
    state = page.wait_for_selector("#jy-sent-state:has-text('completed')", timeout=30_000)
    assert state.inner_text().lower() == "completed"
    assert '"pong": true' in page.locator("#jy-sent pre").inner_text()
    page.screenshot(path=str(ARTIFACTS / "trigger.png"), full_page=True)

    drain_archive()  # what the recorder process does in production
    page.click("#jy-sent >> text=Open the job's page")
    page.wait_for_selector("#jy-live")
    assert "completed" in page.locator("#jy-live").inner_text().lower()
    assert "Not archived yet" not in page.content()
    page.screenshot(path=str(ARTIFACTS / "job.png"), full_page=True)

    page.click("#jy-ops >> text=Dashboard")
    page.wait_for_selector("#queue-default")
    default = page.locator("#queue-default").inner_text()
    assert "1 completed" in default  # the ping, in the last hour's chart title
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
