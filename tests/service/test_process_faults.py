"""Fault injection on real processes (loopback only, every wait bounded): Ctrl-C of `flywheel run`, kill -9 and
Ctrl-C of `flywheel serve` mid-step. Each ends with the job completed or cleanly cancelled — never left "running".

The processes are the real command line with a scripted backend whose training is slow (tests/slow_flywheel_main.py),
so a signal lands mid-step; they test orchestration, not the engine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from flywheel.pipeline.ingest import ingest_objects
from flywheel.service.jobs import JobRepository
from flywheel.store import open_store
from scripted_jobs import classification_logs

MAIN = Path(__file__).parents[1] / "slow_flywheel_main.py"
WAIT_S = 60.0


class Processes:
    """A store with logs, a config using the slow scripted backend, and the flywheel processes started on it."""

    def __init__(self, tmp_path: Path, home: Path, *, step_s: float) -> None:
        self.home = home
        self.url = f"sqlite:///{home / 'flywheel.db'}"
        config = {
            "nims": [{"model_name": "tiny", "backend": "slow-scripted", "customization_enabled": True}],
            "data_split_config": {"eval_size": 10, "min_total_records": 30, "random_seed": 1},
            "icl_config": {"max_examples": 2, "example_selection": "uniform_distribution"},
            "training_config": {"epochs": 40, "batch_size": 2},
            "executor": {"kind": "inprocess", "lease_s": 3.0, "heartbeat_s": 0.5},
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        self.env = {
            **os.environ,
            "FLYWHEEL_CONFIG": str(path),
            "FLYWHEEL_HOME": str(home),
            "FLYWHEEL_DATABASE_URL": self.url,
            "FLYWHEEL_TEST_STEP_S": str(step_s),
            "PYTHONPATH": os.pathsep.join(sys.path),
        }
        self.engine = open_store(self.url)
        self.repo = JobRepository(self.engine)
        assert ingest_objects(self.engine, classification_logs(60), source="test").quarantined == 0
        self.logs = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"proc{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen([sys.executable, str(MAIN), *args], env=self.env, stdout=log, stderr=log)
        self.procs.append(proc)
        return proc

    def only_job(self) -> str:
        jobs, total = self.repo.list_jobs()
        assert total == 1
        return str(jobs[0]["id"])

    def step(self, job_id: str, name: str) -> dict[str, Any]:
        return next(s for s in self.repo.steps(job_id) if s.name == name).__dict__

    def training_runs(self, job_id: str) -> bool:
        return self.step(job_id, "customization:tiny")["status"] == "running"

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.logs.glob("proc*.log")))

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.engine.dispose()


@pytest.fixture
def make_procs(tmp_path: Path, home: Path) -> Iterator[Callable[[float], Processes]]:
    """Why: each test needs its own store and processes, killed and disposed of even when it fails."""
    made: list[Processes] = []

    def make(step_s: float = 0.05) -> Processes:
        made.append(Processes(tmp_path, home, step_s=step_s))
        return made[-1]

    yield make
    for p in made:
        p.close()


@pytest.fixture
def procs(make_procs: Callable[[float], Processes]) -> Processes:
    return make_procs(0.05)


def _wait(condition: Callable[[], bool], what: str, procs: Processes) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{procs.log()}"
        time.sleep(0.05)


def _job_started(procs: Processes) -> bool:
    return procs.repo.list_jobs()[1] == 1


# ------------------------------------------------------------------------------------------------ flywheel run


def test_ctrl_c_of_flywheel_run_cancels_the_job_and_keeps_finished_steps(procs: Processes) -> None:
    run = procs.start("run", "--workload-id", "news", "--client-id", "web", "--json")
    _wait(lambda: _job_started(procs) and procs.training_runs(procs.only_job()), "training", procs)
    run.send_signal(signal.SIGINT)
    assert run.wait(WAIT_S) is not None
    job = procs.repo.job(procs.only_job())
    assert job.status == "cancelled", procs.log()
    assert procs.step(job.id, "base-eval:tiny")["status"] == "completed"
    assert procs.step(job.id, "customization:tiny")["status"] == "cancelled"


def test_a_second_ctrl_c_stops_flywheel_run_at_once_and_the_job_still_ends_cancelled(
    make_procs: Callable[[float], Processes],
) -> None:
    procs = make_procs(5.0)
    run = procs.start("run", "--workload-id", "news", "--client-id", "web")
    _wait(lambda: _job_started(procs) and procs.training_runs(procs.only_job()), "training", procs)
    run.send_signal(signal.SIGINT)  # the cancel now waits for the current 5 s training step
    time.sleep(0.5)
    run.send_signal(signal.SIGINT)
    assert run.wait(WAIT_S) == 130, procs.log()
    job = procs.repo.job(procs.only_job())
    assert job.status == "cancelled" and job.finished_at is not None
    assert {s.status for s in procs.repo.steps(job.id)} <= {"completed", "cancelled"}


# ------------------------------------------------------------------------------------------------ flywheel serve


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(procs: Processes, port: int) -> subprocess.Popen[bytes]:
    proc = procs.start("serve", "--port", str(port))

    def up() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/api/jobs", timeout=1).status_code == 200
        except httpx.HTTPError:
            assert proc.poll() is None, procs.log()
            return False

    _wait(up, "the server to answer", procs)
    return proc


@pytest.mark.parametrize("fault", ["kill -9", "ctrl-c"])
def test_a_server_restarted_inside_the_lease_after_a_crash_or_ctrl_c_finishes_the_job(
    procs: Processes, fault: str
) -> None:
    port = _free_port()
    server = _serve(procs, port)
    created = httpx.post(
        f"http://127.0.0.1:{port}/api/jobs", json={"workload_id": "news", "client_id": "web"}
    )
    job_id = created.json()["id"]
    _wait(lambda: procs.training_runs(job_id), "training", procs)
    if fault == "kill -9":
        server.kill()
    else:
        server.send_signal(signal.SIGINT)
    server.wait(WAIT_S)
    step = procs.step(job_id, "customization:tiny")
    if fault == "ctrl-c":  # a clean shutdown hands the step back at once
        assert step["status"] == "pending" and step["lease_expires_at"] is None, (step, procs.log())
    else:  # a crash leaves the step running under a lease that nobody renews
        assert step["status"] == "running" and step["lease_expires_at"] > time.time()

    procs.env["FLYWHEEL_TEST_STEP_S"] = "0"  # the restarted server trains fast
    _serve(procs, port)
    _wait(lambda: procs.repo.job(job_id).finished_at is not None, "the job to finish", procs)
    assert procs.repo.job(job_id).status == "completed", procs.log()
    assert procs.step(job_id, "customization:tiny")["attempts"] == 2
