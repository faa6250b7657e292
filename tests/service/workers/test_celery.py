"""Jobs on real Celery workers over real Redis: normal runs, and a worker SIGKILLed mid-training."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from flywheel.config import Settings
from flywheel.pipeline.ingest import ingest_objects
from flywheel.service.jobs import JobRepository, JobRequest, submit_job
from flywheel.service.workers._celery import CeleryExecutor
from flywheel.store import open_store
from scripted_jobs import classification_logs, register_slow_scripted

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

WORKER = Path(__file__).with_name("celery_worker_main.py")
REDIS_URL = os.environ.get("FLYWHEEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class CeleryHarness:
    def __init__(self, tmp_path: Path, db_url: str, home: Path, redis_url: str = REDIS_URL) -> None:
        self.redis_url = redis_url
        self.prefix = f"flywheel-test-{uuid.uuid4().hex[:8]}:"
        config = {
            "nims": [{"model_name": "tiny", "backend": "slow-scripted", "customization_enabled": True}],
            "data_split_config": {"eval_size": 10, "min_total_records": 30, "random_seed": 1},
            "icl_config": {"max_examples": 2, "example_selection": "uniform_distribution"},
            "training_config": {"epochs": 3, "batch_size": 2},
            "executor": {"kind": "celery", "lease_s": 2.0, "heartbeat_s": 0.5, "queue_prefix": self.prefix},
        }
        self.config_path = tmp_path / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.env = {
            **os.environ,
            "FLYWHEEL_CONFIG": str(self.config_path),
            "FLYWHEEL_DATABASE_URL": db_url,
            "FLYWHEEL_HOME": str(home),
            "REDIS_URL": redis_url,
            "PYTHONPATH": os.pathsep.join(sys.path),
        }
        self.settings = Settings.load(self.config_path, env=self.env)
        self.engine = open_store(db_url)
        self.repo = JobRepository(self.engine)
        self.workers: list[subprocess.Popen[bytes]] = []
        self.logs = tmp_path

    def start_worker(self, step_s: float) -> subprocess.Popen[bytes]:
        log = (self.logs / f"worker{len(self.workers)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(step_s)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers.append(proc)
        return proc

    def submit(self) -> str:
        job_id = submit_job(self.repo, self.settings.config, JobRequest(workload_id="news", client_id="web"))
        executor = CeleryExecutor(self.settings)
        executor.submit(job_id)
        executor.stop()
        return job_id

    def wait(self, job_id: str, predicate: Any, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            detail = self.repo.detail(job_id)
            if predicate(detail):
                return detail
            time.sleep(0.2)
        logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in self.logs.glob("worker*.log"))
        raise AssertionError(f"condition not reached: {self.repo.detail(job_id)}\n{logs}")

    def close(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        import redis

        try:
            client = redis.Redis.from_url(self.redis_url)
            keys = list(client.scan_iter(f"{self.prefix}*"))
            if keys:
                client.delete(*keys)
        except redis.RedisError:  # a test's private Redis may be gone already
            pass
        self.engine.dispose()


@pytest.fixture
def celery(tmp_path: Path, postgres_url: str, home: Path) -> Iterator[CeleryHarness]:
    register_slow_scripted(0.0)  # the API side validates backend names too
    harness = CeleryHarness(tmp_path, postgres_url, home)
    ingest_objects(harness.engine, classification_logs(60), source="test")
    yield harness
    harness.close()


def finished(detail: dict[str, Any]) -> bool:
    return detail["finished_at"] is not None


def test_a_job_runs_on_a_celery_worker(celery: CeleryHarness) -> None:
    celery.start_worker(step_s=0.0)
    job_id = celery.submit()
    detail = celery.wait(job_id, finished)
    assert detail["status"] == "completed", detail
    evals = [e["eval_type"] for e in detail["nims"][0]["evaluations"]]
    assert evals == ["base-eval", "icl-eval", "customized-eval"]
    assert all(s["attempts"] == 1 for s in detail["steps"] if s["kind"] != "finalize")


def test_a_worker_killed_mid_training_is_recovered_by_another(celery: CeleryHarness) -> None:
    first = celery.start_worker(step_s=0.3)
    job_id = celery.submit()

    def training(detail: dict[str, Any]) -> bool:
        customs = detail["nims"][0]["customizations"]
        return bool(customs) and customs[0]["steps_completed"] >= 2

    celery.wait(job_id, training)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    detail = celery.repo.detail(job_id)
    assert detail["status"] == "running"  # nobody has noticed yet
    celery.start_worker(step_s=0.0)
    detail = celery.wait(job_id, finished)
    assert detail["status"] == "completed", detail
    steps = {s["name"]: s for s in detail["steps"]}
    assert steps["customization:tiny"]["attempts"] == 2
    assert steps["base-eval:tiny"]["attempts"] == 1  # finished work is not redone
    assert detail["nims"][0]["customizations"][0]["status"] == "completed"


class PrivateRedis:
    """A Redis server of this test's own on a free loopback port, with no persistence — so restarting it loses every
    queued message, as a restarted production Redis without persistence does."""

    def __init__(self, tmp_path: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tmp_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.proc = subprocess.Popen(args, cwd=self.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.RedisError:
                assert time.monotonic() < deadline, "the private Redis did not start"
                time.sleep(0.1)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary")
def test_a_job_finishes_after_redis_restarts_and_loses_its_next_message(
    tmp_path: Path, postgres_url: str, home: Path
) -> None:
    register_slow_scripted(0.0)
    broker = PrivateRedis(tmp_path)
    broker.start()
    celery = CeleryHarness(tmp_path, postgres_url, home, redis_url=broker.url)
    recovery = None
    try:
        ingest_objects(celery.engine, classification_logs(60), source="test")
        celery.start_worker(step_s=0.05)
        job_id = celery.submit()

        def training(detail: dict[str, Any]) -> bool:
            customs = detail["nims"][0]["customizations"]
            return bool(customs) and customs[0]["steps_completed"] >= 2

        celery.wait(job_id, training)
        broker.kill()  # the worker finishes the step, but cannot send the job's next message
        celery.wait(job_id, lambda d: d["nims"][0]["customizations"][0]["status"] == "completed")
        time.sleep(1.0)
        broker.start()  # empty: the next message is gone
        # the API side's recovery loop notices the idle job and sends it again
        recovery = CeleryExecutor(celery.settings, celery.engine)
        detail = celery.wait(job_id, finished, timeout=120)
        assert detail["status"] == "completed", detail
        steps = {s["name"]: s for s in detail["steps"]}
        assert steps["customization:tiny"]["attempts"] == 1  # finished work is not redone
    finally:
        if recovery is not None:
            recovery.stop()
        celery.close()
        broker.kill()
