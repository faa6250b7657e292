"""PostgreSQL connections terminated under a running job (``pg_terminate_backend``, as a failover or an admin
would): the job still ends — completed or failed with the reason, never left "running"."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text

from scripted_jobs import Harness, classification_logs, job_config

pytestmark = pytest.mark.postgres


def _terminate_other_connections(url: str) -> int:
    """Kill every other session on the test database; returns how many were killed."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            return len(
                list(
                    conn.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                        )
                    )
                )
            )
    finally:
        engine.dispose()


def test_a_job_survives_its_database_connections_being_terminated(
    postgres_url: str, tmp_path: object
) -> None:
    from pathlib import Path

    harness = Harness(postgres_url, Path(str(tmp_path)))
    try:
        harness.ingest(classification_logs(60))
        harness.backends.step_s = 0.02
        job_id = harness.submit(job_config(training_config={"epochs": 10, "batch_size": 2}))
        thread = harness.run_in_thread(job_id)
        killed = 0
        deadline = time.monotonic() + 60
        while thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.3)
            killed += _terminate_other_connections(postgres_url)
        thread.join(60)
        assert not thread.is_alive()
        assert killed > 0, "the fault was never injected"
        detail = harness.repo.detail(job_id)
        assert detail["finished_at"] is not None
        # a kill that lands inside a statement fails that statement's step (and says so); one between statements is
        # absorbed by the pool's pre-ping — either way the job ends, with every step ended
        assert detail["status"] in ("completed", "failed"), detail
        assert detail["status"] == "completed" or detail["error"], detail
        assert all(s["status"] not in ("pending", "running") for s in detail["steps"]), detail["steps"]
    finally:
        harness.engine.dispose()
