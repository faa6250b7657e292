"""The web dashboard: one static page at ``/`` that draws runs, reports and samples from the JSON API.

There is no build step and nothing is fetched from outside the server: ``static/`` holds hand-written HTML, CSS and
ES modules, and the charts are SVG drawn by the page. The page and its assets are public; the data is not — every
``/api`` call the page makes carries the API key the user types in when the server answers 401.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).with_name("static")

# The page only ever talks to its own origin; the policy makes a slip in escaping API data harmless.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard on ``app``: ``/`` is the page, ``/static/…`` its scripts, styles and icon."""
    # Some systems map .js to a type browsers refuse for ES modules (or to nothing); say it once, here.
    mimetypes.add_type("text/javascript", ".js")
    mimetypes.add_type("text/css", ".css")
    mimetypes.add_type("image/svg+xml", ".svg")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(
            STATIC_DIR / "index.html",
            media_type="text/html",
            headers={"Cache-Control": "no-cache", "Content-Security-Policy": CONTENT_SECURITY_POLICY},
        )


__all__ = ["STATIC_DIR", "mount_dashboard"]
