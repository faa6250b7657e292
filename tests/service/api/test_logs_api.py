"""`POST /api/logs` and `/health` on the real app, with authentication."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from factories import chat_record
from flywheel.config import FlywheelConfig, Settings
from flywheel.service.api import create_app


def _client(url: str, home: str, keys: str = "") -> TestClient:
    env = {"FLYWHEEL_DATABASE_URL": url, "FLYWHEEL_HOME": home, "FLYWHEEL_API_KEYS": keys}
    return TestClient(create_app(Settings.from_env(FlywheelConfig(), None, env)))


@pytest.fixture
def client(store_url: str, home) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with _client(store_url, str(home)) as c:
        yield c


def test_health(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"


def test_single_record_then_duplicate(client: TestClient) -> None:
    first = client.post("/api/logs", json=chat_record())
    assert first.status_code == 200
    assert (first.json()["accepted"], first.json()["duplicates"]) == (1, 0)
    second = client.post("/api/logs", json=chat_record())
    assert (second.json()["accepted"], second.json()["duplicates"]) == (0, 1)


def test_array_with_bad_items_reports_each(client: TestClient) -> None:
    body = [chat_record("a"), {"workload_id": "w"}, chat_record("b"), 42]
    out = client.post("/api/logs", json=body).json()
    assert (out["total"], out["accepted"], out["quarantined"]) == (4, 2, 2)
    assert [e["index"] for e in out["errors"]] == [1, 3]
    assert out["quarantine_reasons"] == {"missing client_id": 1, "not a JSON object": 1}


def test_body_that_is_not_json_is_400(client: TestClient) -> None:
    response = client.post("/api/logs", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["detail"]


def test_api_keys_are_required_when_configured(sqlite_url: str, home) -> None:  # type: ignore[no-untyped-def]
    with _client(sqlite_url, str(home), keys="k1,k2") as c:
        assert c.post("/api/logs", json=chat_record()).status_code == 401
        bad = c.post("/api/logs", json=chat_record(), headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        ok = c.post("/api/logs", json=chat_record(), headers={"Authorization": "Bearer k2"})
        assert ok.status_code == 200
        assert c.get("/health").status_code == 200  # health stays open for probes
