"""``/docs`` and ``/redoc`` work with no network: every script and style they load is served by flywheel itself."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def app(tmp_path: Path, make_app: Callable[..., Any]) -> Any:
    return make_app(f"sqlite:///{tmp_path / 'flywheel.db'}", tmp_path)


def test_the_doc_pages_load_nothing_from_another_origin_and_their_assets_are_served(app: Any) -> None:
    with TestClient(app) as client:
        pages = {path: client.get(path) for path in ("/docs", "/redoc")}
        for path, page in pages.items():
            assert page.status_code == 200, path
            sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
            assert sources and all(s.startswith("/") for s in sources), (path, sources)
            for source in sources:
                asset = client.get(source)
                assert asset.status_code == 200 and len(asset.content) > 1000, source
            assert "/openapi.json" in page.text
            assert page.headers["content-security-policy"].startswith("default-src 'self'")
        assert "fonts.googleapis.com" not in pages["/redoc"].text


@pytest.mark.browser
def test_swagger_ui_and_redoc_render_the_api_in_a_browser_that_cannot_reach_the_internet(
    app: Any, serve: Callable[[Any], str], open_page: Callable[..., Any]
) -> None:
    from playwright.sync_api import expect

    url = serve(app)
    swagger = open_page(url, "docs")  # any request outside the server fails the test
    expect(swagger.locator(".opblock-summary-path").filter(has_text="/api/jobs").first).to_be_visible()
    redoc = open_page(url, "redoc")
    expect(redoc.get_by_text("Start a flywheel run").first).to_be_attached()
