"""The in-process executor: worker threads inside the CLI or the API server, no broker."""

from __future__ import annotations

import logging
import os
import queue
import socket
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

    Jobs on different threads share the process's CPU thread budget (``FLYWHEEL_CPU_THREADS``): the local engine
    runs each model step on its share of it (:mod:`flywheel.backends.local._threads`), so ``workers`` > 1 does not
    oversubscribe the cores.

    ``run_job(job_id)`` does the work (normally ``JobRunner.run``); it must never raise, but if it does the
    executor logs it and carries on. ``on_stop`` is called first thing by :meth:`stop` (normally
    ``JobRunner.interrupt``), ``after_stop`` once the threads have ended or the timeout passed (normally releasing
    the leases this process still holds).
    """

    def __init__(
        self,
        run_job: Callable[[str], str],
        *,
        workers: int = 1,
        on_stop: Callable[[], None] | None = None,
        after_stop: Callable[[], None] | None = None,
    ) -> None:
        self._run_job = run_job
        self._on_stop = on_stop
        self._after_stop = after_stop
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._loop, name=f"flywheel-job-{i}", daemon=True) for i in range(workers)
        ]
        self._active: set[str] = set()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._started = False
        self._recovery: Any = None

    def start(self) -> None:
        if not self._started:
            for thread in self._threads:
                thread.start()
            self._started = True

    def watch(self, recovery: Any) -> None:
        """Keep ``recovery`` (a started :class:`RecoveryLoop`) running until :meth:`stop`."""
        self._recovery = recovery

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
        """Stop: no new work, running steps interrupted and handed back (never cancelled), threads joined for up
        to ``timeout`` seconds, then whatever this process still holds released for the next start."""
        if self._recovery is not None:
            self._recovery.stop()
        if self._on_stop is not None:
            self._on_stop()
        for _ in self._threads:
            self._queue.put(None)
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            if thread.is_alive():
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if self._after_stop is not None:
            self._after_stop()


def start_inprocess_executor(settings: Any, engine: Engine, *, backends: Any = None) -> InProcessExecutor:
    """An executor for ``settings`` on ``engine``, started, with unfinished jobs of earlier processes queued and a
    recovery loop that re-queues jobs whose worker died later (a lease that expires while this server runs)."""
    from flywheel.service.jobs import JobRepository, JobRunner, default_backends
    from flywheel.service.workers._recovery import RecoveryLoop

    repo = JobRepository(engine)
    worker_id = f"inprocess@{socket.gethostname()}:{os.getpid()}"
    runner = JobRunner(
        repo,
        home=settings.home,
        backends=backends if backends is not None else default_backends(settings),
        env=settings.env,
        worker_id=worker_id,
        lease_s=settings.config.executor.lease_s,
    )

    def release_leases() -> None:
        for job_id in repo.release_worker_steps(
            worker_id, f"worker {worker_id} shut down; the step runs again"
        ):
            log.info("released the running step of job %s for the next start", job_id)

    executor = InProcessExecutor(
        runner.run,
        workers=settings.config.executor.max_concurrent_jobs,
        on_stop=runner.interrupt,
        after_stop=release_leases,
    )
    executor.start()
    for job_id in resumable_jobs(engine):
        executor.submit(job_id)
    executor.watch(RecoveryLoop(engine, executor.submit, settings.config.executor.heartbeat_s).start())
    return executor
