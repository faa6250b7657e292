"""The dashboard's page and assets as the server delivers them (no browser)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from flywheel.service.web import STATIC_DIR

# XML namespace names: identifiers that browsers never fetch.
NAMESPACES = {"http://www.w3.org/2000/svg"}


@pytest.fixture
def client(make_app: Callable[..., Any], sqlite_url: str, home: Path) -> Iterator[TestClient]:
    with TestClient(make_app(sqlite_url, home, keys="k-123")) as c:
        yield c


def test_root_serves_the_page_with_a_same_origin_content_policy(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="static/app.js"></script>' in response.text
    assert 'href="static/app.css"' in response.text
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy


@pytest.mark.parametrize(
    ("asset", "content_type"),
    [
        ("app.js", "text/javascript"),
        ("app.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
def test_assets_are_served_with_their_content_types(
    client: TestClient, asset: str, content_type: str
) -> None:
    response = client.get(f"/static/{asset}")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == content_type
    assert response.content == (STATIC_DIR / asset).read_bytes()


def test_every_module_the_page_imports_is_served_as_javascript(client: TestClient) -> None:
    seen: set[str] = set()
    todo = ["app.js"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        response = client.get(f"/static/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"].split(";")[0] == "text/javascript", name
        todo += re.findall(r'from "\./([\w.-]+\.js)"', response.text)
    assert {"api.js", "dom.js", "charts.js", "runs.js", "run.js", "samples.js"} <= seen


def test_unknown_assets_and_paths_outside_static_are_404(client: TestClient) -> None:
    assert client.get("/static/nope.js").status_code == 404
    assert client.get("/static/%2e%2e/__init__.py").status_code == 404


def test_assets_reference_nothing_outside_the_server() -> None:
    files = sorted(p for p in STATIC_DIR.iterdir() if p.is_file())
    assert {p.name for p in files} >= {"index.html", "app.js", "app.css"}
    for path in files:
        text = path.read_text()
        urls = set(re.findall(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'`)<>]*", text))
        assert urls <= NAMESPACES, f"{path.name} names outside URLs: {urls - NAMESPACES}"
        # protocol-relative URLs, CSS imports and remote fonts would escape the server as well
        assert not re.search(r"""(["'(=]\s*//\w)""", text), path.name
        assert "@import" not in text and "@font-face" not in text, path.name
        for target in re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", text):
            assert not target.startswith(("/", "data:", "javascript:")) or target == "", (path.name, target)
        for target in re.findall(r"""url\(\s*["']?([^"')]*)""", text):
            assert target.startswith("static/") or not target, (path.name, target)
        for module in re.findall(r"""import\s[^"']*["']([^"']+)["']""", text):
            assert module.startswith("./"), (path.name, module)


def test_page_and_assets_are_public_while_the_api_needs_the_key(client: TestClient) -> None:
    assert client.get("/api/jobs").status_code == 401
    assert client.get("/api/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/").status_code == 200
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/api/jobs", headers={"Authorization": "Bearer k-123"}).json()["total"] == 0


def test_no_asset_writes_html_from_strings() -> None:
    """API data is log content: the scripts build nodes and set text, never parse strings as HTML."""
    for path in STATIC_DIR.glob("*.js"):
        text = path.read_text()
        for sink in (
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ):
            assert sink not in text, f"{path.name} uses {sink}"
