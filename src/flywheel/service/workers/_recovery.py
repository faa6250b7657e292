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


def recover_idle(
    engine: Engine,
    submit: Callable[[str], None],
    *,
    idle_s: float,
    nudged: dict[str, float],
    now: float | None = None,
) -> list[str]:
    """Re-submit unfinished jobs that nothing has touched for ``idle_s`` and no worker holds: their next message
    was lost (a broker restarted without persistence) or could not be sent. A duplicate is harmless — claiming a step
    is atomic and a message for a held step does nothing — so each job is nudged at most once per ``idle_s``
    (``nudged`` remembers when). Returns the ids submitted."""
    from flywheel.service.jobs import JobRepository

    now = time.time() if now is None else now
    submitted = []
    for job_id in JobRepository(engine).idle_jobs(now, idle_s):
        if now - nudged.get(job_id, 0.0) < idle_s:
            continue
        nudged[job_id] = now
        log.warning("re-submitting job %s: no activity for %.0f s and no worker holds it", job_id, idle_s)
        submit(job_id)
        submitted.append(job_id)
    return submitted


class RecoveryLoop:
    """Runs :func:`recover_stalled` (and, with ``idle_s``, :func:`recover_idle`) every ``interval_s`` seconds on a
    daemon thread."""

    def __init__(
        self, engine: Engine, submit: Callable[[str], None], interval_s: float, *, idle_s: float | None = None
    ) -> None:
        self._engine = engine
        self._submit = submit
        self._interval = interval_s
        self._idle_s = idle_s
        self._nudged: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="flywheel-recovery", daemon=True)

    def start(self) -> RecoveryLoop:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                recover_stalled(self._engine, self._submit)
                if self._idle_s is not None:
                    recover_idle(self._engine, self._submit, idle_s=self._idle_s, nudged=self._nudged)
            except Exception:  # the sweeper must survive a database hiccup
                log.exception("recovery sweep failed")
            self._stop.wait(self._interval)

    def stop(self) -> None:
        self._stop.set()
