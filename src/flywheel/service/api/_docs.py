"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) served with their scripts and styles from this server.

FastAPI's own pages load them from a CDN, so on an offline or locked-down cluster they stay blank. The assets come
from the ``fastapi-offline`` package (its ``static`` folder only: the pages are FastAPI's own HTML helpers) and are
served under ``/docs/static``. Paths honour the ASGI ``root_path``, so the pages also work behind a path-prefixing
proxy. Both pages carry a Content-Security-Policy that allows this server only: ReDoc's bundle still asks a CDN for
the logo in its footer (it hides the image when that fails), and the policy stops the browser from even trying.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_PREFIX = "/docs/static"
#: This server only; inline scripts and styles (the pages' own start-up code), blob workers (ReDoc's search), data:
#: images and fonts (inlined by the bundles).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' blob:; worker-src 'self' blob:; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'"
)


def _assets() -> Path:
    return Path(str(resources.files("fastapi_offline") / "static"))


def mount_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` for ``app``, which must be built with ``docs_url=None, redoc_url=None``."""
    app.mount(STATIC_PREFIX, StaticFiles(directory=_assets()), name="docs-static")
    title = f"{app.title} API"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=title,
            swagger_js_url=f"{root}{STATIC_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_PREFIX}/favicon.png",
        )
        page.headers["content-security-policy"] = CONTENT_SECURITY_POLICY
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=title,
            redoc_js_url=f"{root}{STATIC_PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_PREFIX}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["content-security-policy"] = CONTENT_SECURITY_POLICY
        return page
