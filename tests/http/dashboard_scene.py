"""Makes docs/dashboard.png: a real server under a small varying load, then a headless Chromium screenshot.

Not a test (it runs for minutes). Four workers of different speeds serve three functions (inputs ending in 7
fail), jobs arrive at 15 then 27 per second in turns of 20 s, and a fourth function nobody serves piles up:

    .venv/bin/python tests/http/dashboard_scene.py 100 docs/dashboard.png
"""

from __future__ import annotations

import random
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, for the harness's `servers`

from http_harness import HttpServer, start_http_server

from geartrain import SyncWorker


def start_worker(server: HttpServer, name: str, functions: list[str], delay: float) -> None:
    worker = SyncWorker(server.address, client_id=name)

    def run(job: object) -> bytes:
        data: bytes = job.data  # type: ignore[attr-defined]
        time.sleep(delay * random.uniform(0.5, 1.5))
        if data.endswith(b"7"):
            raise RuntimeError("bad input")
        return data[::-1]

    for function in functions:
        worker.register(function, run)
    threading.Thread(target=worker.work, daemon=True).start()


def submit(server: HttpServer, function: str, n: int, priority: str = "normal") -> None:
    headers = {"X-Gearman-Background": "true", "X-Gearman-Unique": f"{function}-{n}", "X-Gearman-Priority": priority}
    request = urllib.request.Request(
        f"{server.base_url}/{function}", data=f"{function}-{n}".encode(), method="POST", headers=headers
    )
    with urllib.request.urlopen(request) as response:
        response.read()


def main(seconds: float, screenshot: str) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    server = start_http_server(Path(tempfile.mkdtemp()), "--store", "memory")
    try:
        start_worker(server, "thumbs-1", ["thumbnail"], 0.05)
        start_worker(server, "thumbs-2", ["thumbnail"], 0.05)
        start_worker(server, "mailer", ["send_email"], 0.2)
        start_worker(server, "reports", ["render_report", "send_email"], 0.8)
        started, n = time.monotonic(), 0
        while (elapsed := time.monotonic() - started) < seconds:
            for _ in range((27 if int(elapsed / 20) % 2 else 15) // 5):
                n += 1
                submit(server, "thumbnail", n)
            if n % 3 == 0:
                submit(server, "send_email", n, "high")
            if n % 7 == 0:
                submit(server, "render_report", n, "low")
            if n % 11 == 0:
                submit(server, "resize_video", n)
            time.sleep(0.2)
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1150"):
            options.add_argument(argument)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            driver.get(server.base_url + "/")
            time.sleep(5)  # two live updates
            driver.save_screenshot(screenshot)
        finally:
            driver.quit()
    finally:
        server.stop()


if __name__ == "__main__":
    main(float(sys.argv[1]), sys.argv[2])
