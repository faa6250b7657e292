"""The image's probe and migration scripts (deploy/bin), run here as the containers run them."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
HEALTHCHECK = REPO / "deploy/bin/healthcheck.py"
WAIT_FOR_STORE = REPO / "deploy/bin/wait_for_store.py"
REDIS_URL = os.environ.get("FLYWHEEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def run(script: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, str(script), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result.returncode, result.stdout + result.stderr


@pytest.fixture
def health_server() -> Iterator[tuple[int, list[int]]]:
    """Why: the API probe is checked against a real HTTP server on a free port, answering the status we set."""
    status = [200]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status[0] if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b'{"status": "ok"}')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], status
    server.shutdown()
    server.server_close()


def test_the_api_probe_passes_on_a_healthy_server_and_fails_otherwise(
    health_server: tuple[int, list[int]],
) -> None:
    port, status = health_server
    assert run(HEALTHCHECK, "api", str(port))[0] == 0
    status[0] = 503
    code, out = run(HEALTHCHECK, "api", str(port))
    assert code == 1 and "503" in out


def test_the_api_probe_fails_when_nothing_listens() -> None:
    code, out = run(HEALTHCHECK, "api", "9")  # the discard port: nothing serves HTTP there
    assert code == 1 and "http://127.0.0.1:9/health" in out


@pytest.mark.parametrize("args", [[], ["bogus"], ["api", "x"], ["worker", "1"]])
def test_the_probe_rejects_a_wrong_command_line(args: list[str]) -> None:
    code, out = run(HEALTHCHECK, *args)
    assert code == 2 and "usage" in out


def db_upgrade(env: dict[str, str]) -> tuple[int, str]:
    """The migration Job's and compose `migrate` service's command, `flywheel db upgrade`."""
    result = subprocess.run(
        [sys.executable, "-m", "flywheel", "db", "upgrade"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode, result.stdout + result.stderr


def test_the_pods_wait_for_the_migration_job(tmp_path: Path) -> None:
    env = {"FLYWHEEL_HOME": str(tmp_path), "FLYWHEEL_CONFIG": str(REPO / "config/config.yaml")}
    code, out = run(WAIT_FOR_STORE, "0", env=env)
    assert code == 1 and "flywheel db upgrade" in out and "revision None" in out
    code, out = db_upgrade(env)
    assert code == 0, out
    from flywheel.store import connect, current_revision, head_revision

    engine = connect(f"sqlite:///{tmp_path / 'flywheel.db'}")
    assert current_revision(engine) == head_revision()
    engine.dispose()
    code, out = run(WAIT_FOR_STORE, "5", env=env)
    assert code == 0 and head_revision() in out


def test_a_waiting_pod_starts_once_the_migration_has_run(tmp_path: Path) -> None:
    env = {"FLYWHEEL_HOME": str(tmp_path), "FLYWHEEL_CONFIG": str(REPO / "config/config.yaml")}
    waiter = subprocess.Popen(
        [sys.executable, str(WAIT_FOR_STORE), "60"], env={**os.environ, **env}, stdout=subprocess.PIPE
    )
    try:
        time.sleep(1.0)
        assert waiter.poll() is None, "the wait ended before the store was migrated"
        assert db_upgrade(env)[0] == 0
        assert waiter.wait(timeout=30) == 0
    finally:
        if waiter.poll() is None:
            waiter.kill()
        waiter.wait()


@pytest.mark.parametrize("args", [["soon"], ["1", "2"]])
def test_the_wait_rejects_a_wrong_command_line(args: list[str]) -> None:
    code, out = run(WAIT_FOR_STORE, *args)
    assert code == 2 and "usage" in out


@pytest.fixture
def celery_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Why: a worker and its probe need one configuration (broker, key prefix) that no other test's Redis keys share;
    the keys are deleted afterwards."""
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    prefix = f"flywheel-test-{uuid.uuid4().hex[:8]}:"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"executor": {"kind": "celery", "queue_prefix": prefix}}))
    yield {"FLYWHEEL_CONFIG": str(config), "FLYWHEEL_HOME": str(tmp_path), "REDIS_URL": REDIS_URL}
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)


@pytest.mark.redis
def test_the_worker_probe_fails_without_a_worker(celery_env: dict[str, str]) -> None:
    code, out = run(HEALTHCHECK, "worker", env=celery_env)
    assert code == 1 and "no flywheel worker" in out


@pytest.mark.redis
def test_the_worker_probe_passes_once_this_hosts_worker_answers(
    celery_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**os.environ, **celery_env, "FLYWHEEL_CPU_THREADS": "1"}
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "flywheel", "worker", "--queues", "flywheel", "--pool", "solo"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        code, out = 1, ""
        while time.monotonic() < deadline and worker.poll() is None:
            code, out = run(HEALTHCHECK, "worker", env=celery_env)
            if code == 0:
                break
            time.sleep(0.5)
        assert code == 0, out + (tmp_path / "worker.log").read_text(errors="replace")[-3000:]
        assert "flywheel-flywheel@" in out
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
