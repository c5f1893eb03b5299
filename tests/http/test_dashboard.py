"""The dashboard in headless Chromium (Debian's chromium + chromium-driver, through selenium), against a real
server with real jobs: live counts, search, cancel and purge buttons, and the server state they change.

Set GEARTRAIN_SCREENSHOT=path to keep the screenshot (docs/dashboard.png is made that way).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from http_harness import HttpServer

from servers import GearmanSocket, PacketType, admin, parse_status, wait_until

P = PacketType
UI_TIMEOUT = 20.0  # live updates come every 2 s


def cell(driver: Any, function: str, column: str) -> str | None:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        found = driver.find_element("css selector", f'#functions tr[data-function="{function}"] td.{column}')
        return str(found.get_attribute("data-total") if column == "queued" else found.text)
    except (NoSuchElementException, StaleElementReferenceException):
        return None


def texts(driver: Any, selector: str) -> list[str] | None:
    """The texts of the elements; None when none is there yet, or they were redrawn while being read."""
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        return [str(e.text) for e in driver.find_elements("css selector", selector)] or None
    except StaleElementReferenceException:
        return None


def worker_cell(driver: Any, column: str) -> str | None:
    """A cell of the (only) worker's row."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return str(driver.find_element("css selector", f"#workers tr[data-worker] td.{column}").text)
    except (NoSuchElementException, StaleElementReferenceException):
        return None


def detail_field(driver: Any, name: str) -> str | None:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return str(driver.find_element("css selector", f'#detail-fields dd[data-field="{name}"]').text)
    except (NoSuchElementException, StaleElementReferenceException):
        return None


def job_rows(driver: Any) -> list[str] | None:
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        return [
            row.get_attribute("data-handle") for row in driver.find_elements("css selector", "#jobs tr[data-handle]")
        ]
    except StaleElementReferenceException:
        return None


def click(driver: Any, selector: str) -> None:
    """Click the element, retrying while a live update replaces it."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    def attempt() -> bool:
        try:
            driver.find_element("css selector", selector).click()
            return True
        except (NoSuchElementException, StaleElementReferenceException):
            return False

    wait_until(attempt, UI_TIMEOUT, f"a clickable {selector}")


def test_dashboard_shows_live_counts_and_its_buttons_change_the_server(
    http_server: HttpServer, browser: Any, tmp_path: Path
) -> None:
    browser.get(http_server.base_url + "/")
    assert browser.current_url.endswith("/dashboard/")
    wait_until(lambda: browser.find_element("id", "live-status").text == "live", UI_TIMEOUT, "the event stream")

    bg = {"X-Gearman-Background": "true"}
    handles = {}
    for n in range(6):
        headers = {**bg, "X-Gearman-Unique": f"img-{n}"}
        handles[n] = http_server.request("POST", "/resize", f"picture {n}".encode(), headers)[1]["X-Gearman-Job-Handle"]
    for n in range(3):
        http_server.request("POST", "/email", f"mail {n}".encode(), {**bg, "X-Gearman-Priority": "high"})
    wait_until(lambda: cell(browser, "resize", "queued") == "6", UI_TIMEOUT, "6 queued resize jobs on the page")
    assert cell(browser, "email", "queued") == "3"

    with GearmanSocket(http_server.address) as client, GearmanSocket(http_server.address) as worker:
        worker.send(P.SET_CLIENT_ID, b"resizer-7")
        worker.send(P.CAN_DO, b"resize")
        for _ in range(2):
            handle = worker.grab().args[0]
            worker.send(P.WORK_COMPLETE, handle, b"ok")
        running = worker.grab().args[0].decode()  # held: shows as the worker's running job
        wait_until(lambda: cell(browser, "resize", "completed") == "2", UI_TIMEOUT, "2 completed on the page")
        assert cell(browser, "resize", "queued") == "3" and cell(browser, "resize", "running") == "1"
        assert cell(browser, "resize", "pending") == "0" and cell(browser, "resize", "replayed") == "0"
        assert (cell(browser, "resize", "oldest") or "").endswith(" s")  # the longest wait, in seconds
        # The worker, identified: its address and port, client id, functions, results sent, connected since.
        host, port = worker.sock.getsockname()[:2]
        wait_until(lambda: worker_cell(browser, "jobs-done") == "2", UI_TIMEOUT, "the worker's jobs done")
        assert worker_cell(browser, "address") == f"{host}:{port}"
        assert worker_cell(browser, "client-id") == "resizer-7" and worker_cell(browser, "functions") == "resize"
        assert (worker_cell(browser, "connected") or "").endswith(" ago")
        assert running in browser.find_element("id", "workers").text
        assert len(browser.find_elements("css selector", "#throughput polyline")) == 2  # submitted and finished
        # The chart has a value axis in jobs per second and a time axis, both labelled, with ticks.
        assert wait_until(lambda: texts(browser, "#throughput text.axis-title"), UI_TIMEOUT) == ["jobs/s", "time"]
        assert len(wait_until(lambda: texts(browser, "#throughput .y-axis text.tick"), UI_TIMEOUT)) == 5
        assert len(wait_until(lambda: texts(browser, "#throughput .x-axis text.tick"), UI_TIMEOUT)) >= 4
        heading = browser.find_element("css selector", "#throughput-section h2 small")
        assert "last 1 h" in heading.text
        click(browser, '#ranges button[data-range="600"]')
        wait_until(lambda: "last 10 min" in heading.text, UI_TIMEOUT, "the 10-minute range")
        ticks = wait_until(lambda: texts(browser, "#throughput .x-axis text.tick"), UI_TIMEOUT)
        assert all(len(tick) == 5 and tick[2] == ":" for tick in ticks)  # clock times, HH:MM

        # A job's detail: its payload, kind, state, attempts and history.
        click(browser, f'#jobs tr[data-handle="{handles[4]}"] a.job-link')
        wait_until(lambda: detail_field(browser, "state") == "queued", UI_TIMEOUT, "the job's detail")
        assert browser.find_element("id", "detail-payload").text == "picture 4"
        assert detail_field(browser, "kind") == "background" and detail_field(browser, "size") == "9 bytes"
        assert detail_field(browser, "unique") == "img-4" and detail_field(browser, "attempts") == "0"
        assert wait_until(lambda: texts(browser, "#detail-history td.event"), UI_TIMEOUT) == ["created"]
        click(browser, "#workers tr a.job-link")  # the worker's running job
        wait_until(lambda: detail_field(browser, "state") == "running", UI_TIMEOUT, "the running job's detail")
        assert browser.find_element("id", "detail-handle").text == running
        assert "resizer-7" in (detail_field(browser, "worker") or "")
        click(browser, "#detail-close")
        assert not browser.find_element("id", "job-detail").is_displayed()

        # A foreground job a real client waits for; found with the search box, then cancelled with its button.
        waiting = client.submit("resize", b"urgent", unique="needle-42")
        search = browser.find_element("id", "job-search")
        search.send_keys("needle")
        wait_until(lambda: job_rows(browser) == [waiting], UI_TIMEOUT, "the search to show only the needle job")
        screenshot = Path(os.environ.get("GEARTRAIN_SCREENSHOT") or tmp_path / "dashboard.png")
        browser.save_screenshot(str(screenshot))
        click(browser, f'#jobs tr[data-handle="{waiting}"] button.cancel')
        assert client.expect(P.WORK_FAIL).args[0].decode() == waiting  # the client heard of the cancel
        job = http_server.get_json(f"/api/jobs/{waiting}")
        assert job["state"] == "cancelled"  # type: ignore[index]
        wait_until(lambda: "cancelled" in browser.find_element("id", "message").text, UI_TIMEOUT, "the message")

        search.clear()
        search.send_keys("img-5")
        wait_until(lambda: job_rows(browser) == [handles[5]], UI_TIMEOUT, "the search by unique")

        # Purge the email queue: confirm the dialog; the server's queue empties and the page follows.
        click(browser, '#functions tr[data-function="email"] button.purge')
        browser.switch_to.alert.accept()
        wait_until(lambda: cell(browser, "email", "queued") == "0", UI_TIMEOUT, "the purged queue on the page")
        assert parse_status(admin(http_server.address, "status"))["email"].total == 0
        assert "purged 3 job(s) of email" in browser.find_element("id", "message").text
    assert screenshot.stat().st_size > 10_000
