"""Finding work whose worker died, so no job stays "running" without a live worker."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine

log = logging.getLogger(__name__)

#: A step whose worker was lost this many times fails the job instead of being retried again.
MAX_ATTEMPTS = 3


def recover_stalled(engine: Engine, submit: Callable[[str], None], *, now: float | None = None) -> list[str]:
    """Re-queue jobs whose running step's lease expired (its worker died); fail them after MAX_ATTEMPTS.

    The stalled step is put back to ``pending`` (with the reason) before the job is submitted again, so a second
    sweep does not submit it twice. Returns the ids of the jobs that were re-queued.
    """
    from flywheel.service.jobs import JobRepository

    repo = JobRepository(engine)
    requeued = []
    for step in repo.stalled_steps(time.time() if now is None else now):
        reason = (
            f"worker {step.worker_id} stopped responding during step {step.name} (attempt {step.attempts})"
        )
        if step.attempts >= MAX_ATTEMPTS:
            repo.end_step(step.id, "failed", error=reason)
            log.error("job %s failed: %s", step.job_id, reason)
            repo.finish_job(step.job_id, "failed", f"{reason}; gave up after {MAX_ATTEMPTS} attempts.")
            continue
        repo.release_step(step.id, f"{reason}; retrying")
        log.warning("re-queueing job %s: %s", step.job_id, reason)
        submit(step.job_id)
        requeued.append(step.job_id)
    return requeued


class RecoveryLoop:
    """Runs :func:`recover_stalled` every ``interval_s`` seconds on a daemon thread."""

    def __init__(self, engine: Engine, submit: Callable[[str], None], interval_s: float) -> None:
        self._engine = engine
        self._submit = submit
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="flywheel-recovery", daemon=True)

    def start(self) -> RecoveryLoop:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                recover_stalled(self._engine, self._submit)
            except Exception:  # the sweeper must survive a database hiccup
                log.exception("recovery sweep failed")
            self._stop.wait(self._interval)

    def stop(self) -> None:
        self._stop.set()
