"""The dashboard's life-cycle sections in headless Chromium (issue 15): dead jobs with their errors, one retried and
one deleted with their buttons; a function paused and resumed with its button; the cron entries with their next
run and source."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from http_harness import HttpServer

from servers import GearmanSocket, PacketType, admin, wait_until

P = PacketType
POLICY = '[[cron]]\nfunction = "report"\nschedule = "0 7 * * *"\ntimezone = "Europe/Berlin"\n'


def texts(driver: Any, selector: str) -> list[str]:
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        return [str(element.text) for element in driver.find_elements("css selector", selector)]
    except StaleElementReferenceException:  # redrawn meanwhile: asked again
        return []


def click(driver: Any, selector: str) -> bool:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        driver.find_element("css selector", selector).click()
        return True
    except (NoSuchElementException, StaleElementReferenceException):  # not drawn yet, or redrawn meanwhile
        return False


def test_dead_jobs_pause_and_schedules_on_the_dashboard(
    http_server_factory: Callable[..., HttpServer], tmp_path: Path, browser: Any
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    server = http_server_factory("--store", "memory", "--policy-file", str(policy))
    with GearmanSocket(server.address) as client, GearmanSocket(server.address) as worker:
        client.send(P.SUBMIT_JOB_BG, b"flaky", b"u1", b"payload")
        handle = client.expect(P.JOB_CREATED).body.decode()
        worker.send(P.CAN_DO, b"flaky")
        worker.send(P.WORK_EXCEPTION, worker.grab().args[0], b"it broke")
        client.send(P.SUBMIT_JOB_BG, b"doomed", b"u2", b"payload")
        doomed = client.expect(P.JOB_CREATED).body.decode()
        worker.send(P.CAN_DO, b"doomed")
        worker.send(P.WORK_FAIL, worker.grab().args[0])
        worker.sync()
    browser.get(f"http://127.0.0.1:{server.http_port}/dashboard/")
    row = f'#dead tr[data-dead="{handle}"]'
    wait_until(lambda: any("it broke" in text for text in texts(browser, row)), 20, "the dead job listed")
    assert any("report" in text and "0 7 * * *" in text for text in texts(browser, "#cron tr[data-cron]"))
    assert texts(browser, '#cron tr[data-cron="report"] td.source') == ["file"]  # not added at run time
    assert texts(browser, '#cron tr[data-cron="report"] td.next') != [""]  # its next run
    gone = f'#dead tr[data-dead="{doomed}"]'
    wait_until(lambda: any("WORK_FAIL" in text for text in texts(browser, gone)), 20, "the second dead job listed")
    wait_until(lambda: click(browser, gone + " button.delete"), 20, "the Delete button")
    wait_until(lambda: texts(browser, gone) == [], 20, "the deleted job to leave the list")
    assert doomed.encode() not in admin(server.address, "dead list").encode()
    assert server.get_json("/api/functions/doomed")["total"] == 0  # type: ignore[index]  # deleted, not queued
    pause = '#functions tr[data-function="flaky"] button.pause'
    wait_until(lambda: click(browser, pause), 20, "the Pause button")
    wait_until(lambda: admin(server.address, "paused") == "flaky\n.\n", 10, "flaky to be paused")
    wait_until(lambda: click(browser, row + " button.retry"), 20, "the Retry button")
    wait_until(lambda: texts(browser, row) == [], 20, "the dead job to leave the list")
    assert server.get_json("/api/functions/flaky")["total"] == 1  # type: ignore[index]  # queued again, held
    resume = '#functions tr[data-function="flaky"] button.resume'
    wait_until(lambda: click(browser, resume), 20, "the Resume button")
    wait_until(lambda: admin(server.address, "paused") == ".\n", 10, "flaky to be resumed")
