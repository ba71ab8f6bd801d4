"""The gateway's web page in a real browser: Debian's chromium driven by Playwright.

The page shows the upstream's servers and the jobs with live progress, refreshing itself;
nothing is reloaded here, the browser only watches. Chromium is installed like ZooKeeper
(``make test`` runs ``make chromium``; this fixture tries apt-get when it is missing) and
the test skips, saying why, only where no browser can be had.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from runtime.testing import ServerProcess
from tests.http.conftest import KVS_DIR, Gateway, start_server

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")


def _install_chromium() -> str | None:
    """Install Debian's chromium if it is missing; why not, or None when it is there."""
    if CHROMIUM.exists():
        return None
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if sudo and shutil.which("sudo") is None:
        return "chromium is not installed and this user cannot install it (no root, no sudo)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(
            [*sudo, *command], capture_output=True, text=True, env=env, timeout=600
        )
        if done.returncode != 0:
            return (
                f"chromium is not installed and `{' '.join(command)}` failed: {done.stderr[-300:]}"
            )
    return None if CHROMIUM.exists() else "apt-get installed chromium, but not as /usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    why = _install_chromium()
    if why is not None:
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


def test_the_page_shows_servers_and_live_job_progress(
    browser: object, gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    server = start_server(KVS_DIR / "kvs_impl.py", tmp_path, "{}", cwd=KVS_DIR)
    try:
        gw = gateway(
            "kvs", f"127.0.0.1:{server.port}", "--job-concurrency", "1", "--job-chunk", "16"
        )
        page = browser.new_page()
        page.goto(gw.url + "/")
        expect(page.locator("#upstream-state")).to_have_text("reachable (server)")
        row = page.locator(f'#servers tr[data-server="127.0.0.1_{server.port}"]')
        expect(row.locator(".server-state")).to_have_text("running")
        expect(page.locator("#no-jobs")).to_be_visible()

        body = "".join(json.dumps({"key": f"k{i}", "value": "v"}) + "\n" for i in range(40000))
        job = httpx.post(f"{gw.url}/v1/jobs/put", content=body).json()["job"]
        job_row = page.locator(f'#jobs tr[data-job="{job}"]')
        expect(job_row).to_have_attribute("data-state", "running", timeout=10_000)
        bar = job_row.locator('[role="progressbar"]')
        first = int(bar.get_attribute("aria-valuenow") or 0)
        deadline = time.monotonic() + 5  # the page refreshes itself every second
        while int(bar.get_attribute("aria-valuenow") or 0) == first:
            assert time.monotonic() < deadline, "the progress bar did not move"
            time.sleep(0.1)
        second = int(bar.get_attribute("aria-valuenow") or 0)
        assert 0 <= first < second <= 40000, (first, second)
        assert bar.get_attribute("aria-valuemax") == "40000"
        expect(job_row).to_have_attribute("data-state", "completed", timeout=60_000)
        expect(job_row.locator(".count")).to_have_text(" 40000/40000")
        expect(page.locator("#no-jobs")).to_be_hidden()

        # The cancel button of a running job.
        other = httpx.post(f"{gw.url}/v1/jobs/put", content=body).json()["job"]
        other_row = page.locator(f'#jobs tr[data-job="{other}"]')
        expect(other_row).to_have_attribute("data-state", "running", timeout=10_000)
        other_row.locator("button.cancel").click()
        expect(other_row).to_have_attribute("data-state", "cancelled", timeout=10_000)

        # The upstream goes away: the page says so by itself.
        server.kill()
        expect(page.locator("#upstream-state")).to_have_text("unreachable", timeout=10_000)
        expect(page.locator("#upstream-error")).to_contain_text("cannot reach the upstream")
        page.close()
    finally:
        if server.running:
            server.stop()


def test_the_page_works_under_a_mount_prefix(
    browser: object, kvs_server: ServerProcess, tmp_path: Path
) -> None:
    """Mounted in another app (here under /kvs), the page and its assets use the prefix."""
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    from tests.http.test_mount import mounted_app

    with mounted_app(kvs_server.port, tmp_path) as url:
        page = browser.new_page()
        page.goto(url + "/kvs/")
        expect(page.locator("#upstream-state")).to_have_text("reachable (server)")
        expect(page.locator("#service")).to_have_text("kvs")
        page.close()
