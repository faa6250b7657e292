"""`GET /api/quarantine` and `GET /api/quarantine/{id}`: what ingestion rejected, with the reason, paged and
filtered, newest first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from flywheel.config import Settings
from flywheel.pipeline.ingest import ingest_file, ingest_objects
from flywheel.service.api import create_app
from flywheel.store import open_store
from scripted_jobs import classification_logs, job_config


class _NoExecutor:
    def submit(self, job_id: str) -> None:
        raise AssertionError("no job is submitted here")

    def stop(self, timeout: float | None = None) -> None:
        """Nothing runs."""


def _bad_timestamp() -> dict[str, Any]:
    record = classification_logs(1)[0]
    record["timestamp"] = "yesterday"
    return record


@pytest.fixture
def quarantined(store_url: str, home: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """Why: a store where two ingestions rejected input (an API batch, then a file) beside valid records; yields
    the client and the two ingestion ids."""
    engine = open_store(store_url)
    api = ingest_objects(
        engine, [*classification_logs(3), 5, _bad_timestamp(), {"request": {}}], source="api"
    )
    logs = home / "logs.jsonl"
    logs.write_text('{"broken\nnot json either\n')
    from_file = ingest_file(engine, logs)
    assert (api.quarantined, from_file.quarantined) == (3, 2)
    env = {"FLYWHEEL_DATABASE_URL": store_url, "FLYWHEEL_HOME": str(home), "FLYWHEEL_API_KEYS": "k1"}
    settings = Settings.from_env(job_config(), None, env)
    with TestClient(create_app(settings, engine=engine, executor=_NoExecutor())) as client:
        client.headers["Authorization"] = "Bearer k1"
        yield client, {"api": api.ingestion_id, "file": from_file.ingestion_id, "file_source": f"file:{logs}"}
    engine.dispose()


def test_lists_every_rejected_item_newest_first_with_its_reason(
    quarantined: tuple[TestClient, dict[str, str]],
) -> None:
    client, ids = quarantined
    page = client.get("/api/quarantine").json()
    assert page["total"] == 5 and (page["limit"], page["offset"]) == (50, 0)
    records = page["records"]
    assert [r["ingestion_id"] for r in records] == [ids["file"]] * 2 + [ids["api"]] * 3
    assert [r["line_number"] for r in records[:2]] == [2, 1]  # newest first, also within one ingestion
    assert records[0]["source"] == ids["file_source"] and records[0]["raw"] == "not json either"
    assert records[0]["reason"].startswith("not valid JSON")
    assert records[-1]["source"] == "api" and records[-1]["raw"] == "5"
    assert records[-1]["reason"].startswith("not a JSON object")
    assert all(r["created_at"] and "T" in r["created_at"] for r in records)
    oldest = client.get("/api/quarantine", params={"order": "asc"}).json()["records"]
    assert [r["id"] for r in oldest] == [r["id"] for r in reversed(records)]


def test_filters_by_source_ingestion_and_reason(quarantined: tuple[TestClient, dict[str, str]]) -> None:
    client, ids = quarantined

    def total(**params: Any) -> int:
        response = client.get("/api/quarantine", params=params)
        assert response.status_code == 200, response.text
        return int(response.json()["total"])

    assert total(source="api") == 3
    assert total(source=ids["file_source"]) == 2
    assert total(ingestion_id=ids["file"]) == 2
    assert total(ingestion_id="unknown") == 0
    # the stable reason an ingestion report counts matches whatever detail the stored reason carries
    assert total(reason="invalid timestamp") == 1
    assert total(reason="not valid JSON") == 2
    assert total(reason="not valid JSON", source="api") == 0
    assert total(reason="not%") == 0  # LIKE wildcards match themselves only
    assert total(reason="invalid") == 0  # a reason, not any prefix of one


def test_pages_with_limit_and_offset(quarantined: tuple[TestClient, dict[str, str]]) -> None:
    client, _ = quarantined
    every = [r["id"] for r in client.get("/api/quarantine").json()["records"]]
    first = client.get("/api/quarantine", params={"limit": 2}).json()
    rest = client.get("/api/quarantine", params={"limit": 2, "offset": 2}).json()
    beyond = client.get("/api/quarantine", params={"offset": 2**31 - 1}).json()
    assert [r["id"] for r in first["records"] + rest["records"]] == every[:4]
    assert first["total"] == rest["total"] == 5
    assert beyond["records"] == [] and beyond["total"] == 5


def test_shows_one_record_and_404s_an_unknown_id(quarantined: tuple[TestClient, dict[str, str]]) -> None:
    client, _ = quarantined
    listed = client.get("/api/quarantine", params={"limit": 1}).json()["records"][0]
    assert client.get(f"/api/quarantine/{listed['id']}").json() == listed
    missing = client.get("/api/quarantine/999999")
    assert missing.status_code == 404
    assert "flywheel quarantine list" in missing.json()["detail"]


def test_needs_the_api_key(quarantined: tuple[TestClient, dict[str, str]]) -> None:
    client, _ = quarantined
    assert client.get("/api/quarantine", headers={"Authorization": ""}).status_code == 401
    assert client.get("/api/quarantine/1", headers={"Authorization": ""}).status_code == 401
