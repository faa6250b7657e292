"""How flywheel drives a real browser: Debian's Chromium through Playwright, headless, with nothing fetched from the
network (Playwright's own browser download cannot work offline). Used by the dashboard's browser tests and by
``docs/screenshot.py``."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
#: As root in a sandbox-less container; the background-networking flags stop Chromium's calls home, which a closed
#: network refuses many at a time.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
