"""The in-process executor: worker threads inside the CLI or the API server, no broker."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

log = logging.getLogger(__name__)


def resumable_jobs(engine: Engine, now: float | None = None) -> list[str]:
    """Unfinished jobs that no live worker holds: pending ones, and running ones whose step lease has expired.

    This is what a restarted server picks up again, so that no job stays "running" without a worker.
    """
    from flywheel.service.jobs import JobRepository

    return JobRepository(engine).resumable_jobs(time.time() if now is None else now)


class InProcessExecutor:
    """Runs submitted jobs on ``workers`` background threads, one job per thread at a time.

    ``run_job(job_id)`` does the work (normally ``JobRunner.run``); it must never raise, but if it does the
    executor logs it and carries on.
    """

    def __init__(self, run_job: Callable[[str], str], *, workers: int = 1) -> None:
        self._run_job = run_job
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._loop, name=f"flywheel-job-{i}", daemon=True) for i in range(workers)
        ]
        self._active: set[str] = set()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._started = False

    def start(self) -> None:
        if not self._started:
            for thread in self._threads:
                thread.start()
            self._started = True

    def submit(self, job_id: str) -> None:
        with self._lock:
            if job_id in self._active:
                return
            self._active.add(job_id)
        self._queue.put(job_id)

    def _loop(self) -> None:
        while (job_id := self._queue.get()) is not None:
            try:
                self._run_job(job_id)
            except Exception:
                log.exception("job %s raised out of its runner", job_id)
            finally:
                with self._idle:
                    self._active.discard(job_id)
                    self._idle.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no job is queued or running; True unless the timeout expired."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._active:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting work and wait (up to ``timeout``) for running jobs' threads to end."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)


def start_inprocess_executor(settings: Any, engine: Engine, *, backends: Any = None) -> InProcessExecutor:
    """An executor for ``settings`` on ``engine``, started, with unfinished jobs of earlier processes queued."""
    from flywheel.service.jobs import JobRepository, JobRunner, default_backends

    repo = JobRepository(engine)
    runner = JobRunner(
        repo,
        home=settings.home,
        backends=backends if backends is not None else default_backends(settings),
        env=settings.env,
        lease_s=settings.config.executor.lease_s,
    )
    executor = InProcessExecutor(runner.run, workers=settings.config.executor.max_concurrent_jobs)
    executor.start()
    for job_id in resumable_jobs(engine):
        executor.submit(job_id)
    return executor
