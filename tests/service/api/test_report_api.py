"""`GET /api/jobs/{id}/report` and `/samples` on a finished scripted run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from flywheel.backends import ChatRequest
from flywheel.config import Settings
from flywheel.service.api import create_app
from scripted_jobs import Harness, classification_logs, job_config, knows_topics


def mixes_up_tech(request: ChatRequest) -> str:
    """Right on business and sport, answers 'business' for tech: a third of the samples diverge."""
    answer = knows_topics(request)
    return "[[[business]]]" if answer == "[[[tech]]]" else answer


@pytest.fixture
def finished(store_url: str, home: Path) -> Iterator[tuple[TestClient, str]]:
    harness = Harness(store_url, home)
    harness.backends.rule = mixes_up_tech
    harness.ingest(classification_logs(90))
    config = job_config(
        cost={"teacher_parameters_b": 70.0},
        nims=[
            {"model_name": "tiny", "backend": "scripted", "customization_enabled": True, "parameters_b": 0.5}
        ],
    )
    job_id = harness.submit(config)
    assert harness.run(job_id) == "completed"
    env = {"FLYWHEEL_DATABASE_URL": store_url, "FLYWHEEL_HOME": str(home), "FLYWHEEL_API_KEYS": "k1"}
    settings = Settings.from_env(config, None, env)
    with TestClient(create_app(settings, engine=harness.engine, executor=_NoExecutor())) as client:
        client.headers["Authorization"] = "Bearer k1"
        yield client, job_id
    harness.engine.dispose()


class _NoExecutor:
    def submit(self, job_id: str) -> None:
        raise AssertionError("no job is submitted here")

    def stop(self, timeout: float = 0.0) -> None:
        pass


def test_report_has_scores_costs_and_a_near_miss(finished: tuple[TestClient, str]) -> None:
    client, job_id = finished
    report = client.get(f"/api/jobs/{job_id}/report").json()
    assert report["teacher"]["model"] == "meta/llama-3.3-70b-instruct"  # named by the logged requests
    assert report["teacher"]["parameters_b"] == 70.0
    (candidate,) = report["candidates"]
    assert [e["eval_type"] for e in candidate["evaluations"]] == ["base", "icl", "customized"]
    base = candidate["evaluations"][0]
    assert base["n"] == 20 and base["metrics"]["f1_score"]["ci_low"] < base["metrics"]["f1_score"]["value"]
    assert base["cost"]["unit"] == "PFLOP" and 0 < base["saving_pct"] < 100
    assert candidate["customization"]["train_loss"]
    rec = report["recommendation"]
    assert rec["status"] == "no_candidate" and rec["near_miss"]["candidate"] == "tiny"
    assert report["dataset_stats"]["splits"]["eval"]["count"] == 20
    assert set(report["dataset_stats"]["splits"]["eval"]["classes"]) == {"business", "sport", "tech"}


def test_samples_filter_to_divergent_answers(finished: tuple[TestClient, str]) -> None:
    client, job_id = finished
    everything = client.get(f"/api/jobs/{job_id}/samples", params={"limit": 500}).json()
    assert everything["total"] == 60  # 20 eval records × 3 evaluations
    divergent = client.get(
        f"/api/jobs/{job_id}/samples", params={"eval_type": "customized", "max_score": 0.99}
    ).json()
    assert divergent["total"] > 0
    for sample in divergent["samples"]:
        assert sample["eval_type"] == "customized" and sample["score"] == 0.0
        assert (
            sample["teacher"]["content"] == "[[[tech]]]" and sample["answer"]["content"] == "[[[business]]]"
        )
    searched = client.get(f"/api/jobs/{job_id}/samples", params={"search": "ABOUT SPORT"}).json()
    assert searched["total"] > 0 and all("sport" in s["prompt_excerpt"] for s in searched["samples"])
    paged = client.get(f"/api/jobs/{job_id}/samples", params={"limit": 5, "offset": 5}).json()
    assert len(paged["samples"]) == 5 and paged["offset"] == 5


def test_report_and_samples_need_the_key_and_a_known_job(finished: tuple[TestClient, str]) -> None:
    client, job_id = finished
    assert client.get("/api/jobs/nope/report").status_code == 404
    assert client.get("/api/jobs/nope/samples").status_code == 404
    bad = client.get(f"/api/jobs/{job_id}/samples", params={"eval_type": "bogus"})
    assert bad.status_code == 422 and "eval_type" in bad.text
    del client.headers["Authorization"]
    assert client.get(f"/api/jobs/{job_id}/report").status_code == 401


def test_a_job_whose_training_failed_reports_what_finished_and_why(store_url: str, home: Path) -> None:
    harness = Harness(store_url, home)
    harness.backends.rule = knows_topics
    harness.backends.fail_training = True
    harness.ingest(classification_logs(90))
    job_id = harness.submit()
    assert harness.run(job_id) == "completed"  # base and icl evaluations succeeded
    from flywheel.service.jobs import job_report

    report = job_report(harness.engine, job_id)
    harness.engine.dispose()
    (candidate,) = report["candidates"]
    assert candidate["customization"]["status"] == "failed"
    assert "out of memory" in candidate["customization"]["error"]
    evaluated = {e["eval_type"]: e["status"] for e in candidate["evaluations"]}
    assert evaluated["base"] == "completed" and evaluated["icl"] == "completed"
    assert evaluated.get("customized") in (None, "cancelled", "failed")
    assert report["recommendation"]["eval_type"] in ("base", "icl")  # knows_topics is right on every sample
