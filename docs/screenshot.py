"""Screenshot of the dashboard for the README, taken from a real run (e.g. `make demo`'s).

    .venv/bin/flywheel --config config/demo.yaml serve --port 8765 &
    .venv/bin/python docs/screenshot.py http://127.0.0.1:8765 JOB_ID docs/images/dashboard.png

Uses Debian's Chromium (/usr/bin/chromium) through Playwright; nothing is downloaded.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import CHROMIUM, CHROMIUM_ARGS  # the launch settings the browser tests use


def main(base_url: str, job_id: str, out: str) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800}, device_scale_factor=1)
        page.goto(f"{base_url.rstrip('/')}/#/runs/{job_id}")
        page.get_by_test_id("score-chart").wait_for()
        page.wait_for_load_state("networkidle")
        page.screenshot(path=out, full_page=True)
        browser.close()
    print(out)


if __name__ == "__main__":
    main(*sys.argv[1:4])
