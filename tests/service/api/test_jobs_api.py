"""`/api/jobs` on the real app with the in-process executor (scripted model backends)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from flywheel.config import Settings
from flywheel.pipeline.ingest import ingest_objects
from flywheel.service.api import create_app
from flywheel.store import open_store
from scripted_jobs import ScriptedBackends, classification_logs, job_config, knows_topics


def _settings(url: str, home: Path, keys: str = "") -> Settings:
    env = {"FLYWHEEL_DATABASE_URL": url, "FLYWHEEL_HOME": str(home), "FLYWHEEL_API_KEYS": keys}
    return Settings.from_env(job_config(), None, env)


@pytest.fixture
def backends() -> ScriptedBackends:
    return ScriptedBackends(knows_topics)


@pytest.fixture
def client(store_url: str, home: Path, backends: ScriptedBackends) -> Iterator[TestClient]:
    engine = open_store(store_url)
    ingest_objects(engine, classification_logs(60), source="test")
    engine.dispose()
    with TestClient(create_app(_settings(store_url, home), backends=backends)) as c:
        yield c


def _wait(client: TestClient, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = client.get(f"/api/jobs/{job_id}").json()
        if detail["finished_at"] is not None:
            return detail
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {detail}")


def test_post_runs_a_job_to_completion(client: TestClient) -> None:
    response = client.post("/api/jobs", json={"workload_id": "news", "client_id": "web"})
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["message"]) == ("queued", "NIM workflow started")
    detail = _wait(client, body["id"])
    assert detail["status"] == "completed"
    assert {e["eval_type"] for e in detail["nims"][0]["evaluations"]} == {
        "base-eval",
        "icl-eval",
        "customized-eval",
    }
    assert detail["nims"][0]["evaluations"][0]["scores"]["f1_score"] == 1.0


def test_list_filters_and_paginates(client: TestClient) -> None:
    ids = [
        client.post("/api/jobs", json={"workload_id": "news", "client_id": "web"}).json()["id"]
        for _ in range(3)
    ]
    for job_id in ids:
        _wait(client, job_id)
    page = client.get("/api/jobs", params={"limit": 2}).json()
    assert page["total"] == 3 and len(page["jobs"]) == 2
    assert [j["id"] for j in page["jobs"]] == ids[:2]  # oldest first, as in the reference
    rest = client.get("/api/jobs", params={"limit": 2, "offset": 2}).json()
    assert [j["id"] for j in rest["jobs"]] == [ids[2]]
    newest = client.get("/api/jobs", params={"limit": 2, "order": "desc"}).json()
    assert [j["id"] for j in newest["jobs"]] == ids[::-1][:2]
    assert client.get("/api/jobs", params={"order": "newest"}).status_code == 422
    assert client.get("/api/jobs", params={"workload_id": "other"}).json()["total"] == 0
    assert client.get("/api/jobs", params={"status": "completed"}).json()["total"] == 3
    assert client.get("/api/jobs", params={"status": "bogus"}).status_code == 422


class _RecordingExecutor:
    def __init__(self) -> None:
        self.submitted: list[str] = []

    def submit(self, job_id: str) -> None:
        self.submitted.append(job_id)

    def stop(self, timeout: float | None = None) -> None:
        """Nothing runs."""


def test_the_references_latest_job_idiom_finds_the_latest_job(sqlite_url: str, home: Path) -> None:
    """The reference's docs take the latest job with `jq '.jobs[-1].id'` on `GET /api/jobs`."""
    with TestClient(create_app(_settings(sqlite_url, home), executor=_RecordingExecutor())) as c:
        ids = [
            c.post("/api/jobs", json={"workload_id": "news", "client_id": "web"}).json()["id"]
            for _ in range(3)
        ]
        assert c.get("/api/jobs").json()["jobs"][-1]["id"] == ids[-1]
        assert c.get("/api/jobs", params={"order": "desc"}).json()["jobs"][0]["id"] == ids[-1]


def test_unknown_job_is_404(client: TestClient) -> None:
    for method, path in (
        ("get", "/api/jobs/nope"),
        ("post", "/api/jobs/nope/cancel"),
        ("delete", "/api/jobs/nope"),
    ):
        response = getattr(client, method)(path)
        assert response.status_code == 404, path
        assert response.json()["detail"] == "Job with ID nope not found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"client_id": "web"}, "workload_id"),
        ({"workload_id": "", "client_id": "web"}, "workload_id"),
        ({"workload_id": "news", "client_id": "web", "surprise": 1}, "surprise"),
        ({"workload_id": "news", "client_id": "web", "data_split_config": {"val_ratio": 2}}, "val_ratio"),
        ({"workload_id": "news", "client_id": "web", "data_split_config": {"eval_sise": 5}}, "eval_sise"),
        ({"workload_id": "news", "client_id": "web", "icl_config": {"max_examples": 50}}, "max_examples"),
        ({"workload_id": "news", "client_id": "web", "candidates": ["gpt-9"]}, "gpt-9"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(client: TestClient, body: dict[str, Any], field: str) -> None:
    response = client.post("/api/jobs", json=body)
    assert response.status_code == 422, response.text
    assert field in response.text


def test_delete_is_refused_while_active_then_removes_everything(
    client: TestClient, backends: ScriptedBackends, home: Path
) -> None:
    backends.step_s = 0.05
    job_id = client.post(
        "/api/jobs", json={"workload_id": "news", "client_id": "web", "data_split_config": {"eval_size": 10}}
    ).json()["id"]
    refused = client.delete(f"/api/jobs/{job_id}")
    assert refused.status_code == 409
    assert "cancel the job first" in refused.json()["detail"]
    assert (
        client.post(f"/api/jobs/{job_id}/cancel").json()["message"]
        == "Job cancellation initiated successfully."
    )
    detail = _wait(client, job_id)
    assert detail["status"] == "cancelled"
    assert client.post(f"/api/jobs/{job_id}/cancel").json()["message"] == "Job is already cancelled."
    assert client.delete(f"/api/jobs/{job_id}").status_code == 200
    assert client.get(f"/api/jobs/{job_id}").status_code == 404
    assert not (home / "jobs" / job_id).exists()


def test_cancel_of_a_finished_job_is_409(client: TestClient) -> None:
    job_id = client.post("/api/jobs", json={"workload_id": "news", "client_id": "web"}).json()["id"]
    _wait(client, job_id)
    response = client.post(f"/api/jobs/{job_id}/cancel")
    assert response.status_code == 409
    assert response.json()["detail"] == "Cannot cancel a job that has already finished."


def test_every_api_route_needs_a_key_when_keys_are_set(sqlite_url: str, home: Path) -> None:
    with TestClient(create_app(_settings(sqlite_url, home, keys="s3cret"), backends=ScriptedBackends())) as c:
        for method, path in (
            ("get", "/api/jobs"),
            ("post", "/api/jobs"),
            ("get", "/api/jobs/x"),
            ("post", "/api/jobs/x/cancel"),
            ("delete", "/api/jobs/x"),
            ("post", "/api/logs"),
        ):
            assert getattr(c, method)(path).status_code == 401, path
        ok = c.get("/api/jobs", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200


def test_openapi_is_published(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/cancel", "/api/logs"} <= set(paths)


def test_a_server_restart_resumes_unfinished_jobs(store_url: str, home: Path) -> None:
    from flywheel.service.jobs import JobRepository, JobRequest, submit_job

    engine = open_store(store_url)
    ingest_objects(engine, classification_logs(60), source="test")
    # a job accepted by a server that then went away before running it
    job_id = submit_job(JobRepository(engine), job_config(), JobRequest(workload_id="news", client_id="web"))
    engine.dispose()
    with TestClient(
        create_app(_settings(store_url, home), backends=ScriptedBackends(knows_topics))
    ) as client:
        detail = _wait(client, job_id)
    assert detail["status"] == "completed"
