"""The in-process executor never leaves a job "running" without a worker: it recovers jobs whose worker died while
it runs, hands its own running step back on a clean stop, and a cancel that no worker would act on ends the job."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import yaml
from sqlalchemy import update

from flywheel.config import Settings
from flywheel.service.workers import start_inprocess_executor
from flywheel.store import job_steps
from scripted_jobs import Harness, classification_logs, job_config

#: Bound on every wait here; the leases and sweeps below are sub-second, so a pass takes a few seconds.
WAIT_S = 60.0


def _settings(harness: Harness, tmp_path: Path, *, lease_s: float, heartbeat_s: float) -> Settings:
    config = job_config(
        training_config={"epochs": 40, "batch_size": 2},
        executor={"kind": "inprocess", "lease_s": lease_s, "heartbeat_s": heartbeat_s},
    )
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    return Settings.load(path, env={"FLYWHEEL_HOME": str(harness.home)})


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _step(harness: Harness, job_id: str, name: str) -> dict[str, object]:
    return next(s for s in harness.repo.detail(job_id)["steps"] if s["name"] == name)


def test_a_running_server_recovers_a_job_whose_worker_died_after_it_started(
    harness: Harness, tmp_path: Path
) -> None:
    harness.ingest(classification_logs(60))
    job_id = harness.submit(job_config(executor={"lease_s": 1.0, "heartbeat_s": 0.2}))
    runner = harness.runner()
    assert runner.run_step(harness.repo.steps(job_id)[0])  # datasets done
    # a worker of an earlier process died in base-eval; its lease is still valid when this server starts
    with harness.engine.begin() as conn:
        conn.execute(
            update(job_steps)
            .where(job_steps.c.job_id == job_id, job_steps.c.name == "base-eval:tiny")
            .values(status="running", attempts=1, worker_id="dead", lease_expires_at=time.time() + 1.0)
        )
    settings = _settings(harness, tmp_path, lease_s=1.0, heartbeat_s=0.2)
    executor = start_inprocess_executor(settings, harness.engine, backends=harness.backends)
    try:
        _wait(lambda: harness.repo.job(job_id).status == "completed", "the job to complete")
    finally:
        executor.stop(timeout=5)
    attempts = {s["name"]: s["attempts"] for s in harness.repo.detail(job_id)["steps"]}
    assert attempts["datasets"] == 1 and attempts["base-eval:tiny"] == 2


def test_a_clean_stop_hands_the_running_step_back_and_the_next_start_finishes_the_job(
    harness: Harness, tmp_path: Path
) -> None:
    harness.ingest(classification_logs(60))
    harness.backends.step_s = 0.05
    settings = _settings(harness, tmp_path, lease_s=30.0, heartbeat_s=0.2)
    job_id = harness.submit(settings.config)
    executor = start_inprocess_executor(settings, harness.engine, backends=harness.backends)
    executor.submit(job_id)
    _wait(lambda: _step(harness, job_id, "customization:tiny")["status"] == "running", "training to start")
    stopped = time.monotonic()
    executor.stop(timeout=10)
    assert time.monotonic() - stopped < 10, "the step did not stop at its next training step"

    step = _step(harness, job_id, "customization:tiny")
    assert step["status"] == "pending", step  # handed back, not cancelled, lease released
    assert "shut down" in str(step["error"])
    assert harness.repo.job(job_id).status == "running"
    assert not harness.repo.held(job_id)
    # the next start picks it up at once (no lease to wait out) and finishes it
    harness.backends.step_s = 0.0
    executor = start_inprocess_executor(settings, harness.engine, backends=harness.backends)
    try:
        _wait(lambda: harness.repo.job(job_id).finished_at is not None, "the job to finish")
    finally:
        executor.stop(timeout=5)
    assert harness.repo.job(job_id).status == "completed"
    assert _step(harness, job_id, "customization:tiny")["attempts"] == 2


def test_cancelling_a_job_no_worker_holds_ends_it_and_it_can_be_deleted(harness: Harness) -> None:
    harness.ingest(classification_logs(60))
    job_id = harness.submit()
    assert harness.repo.request_cancel(job_id) == "Job cancellation initiated successfully."
    detail = harness.repo.detail(job_id)
    assert detail["status"] == "cancelled" and detail["finished_at"] is not None
    assert {s["status"] for s in detail["steps"]} == {"cancelled"}
    harness.repo.delete_job(job_id)  # no longer "cancel first"
    assert harness.repo.list_jobs()[1] == 0


def test_cancelling_a_job_a_live_worker_holds_leaves_the_ending_to_that_worker(harness: Harness) -> None:
    harness.ingest(classification_logs(60))
    job_id = harness.submit()
    with harness.engine.begin() as conn:
        conn.execute(
            update(job_steps)
            .where(job_steps.c.job_id == job_id, job_steps.c.name == "datasets")
            .values(status="running", worker_id="alive", lease_expires_at=time.time() + 60)
        )
    harness.repo.request_cancel(job_id)
    assert harness.repo.job(job_id).finished_at is None
    assert harness.repo.cancel_requested(job_id)
