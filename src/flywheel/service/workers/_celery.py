"""Scale-out execution on Celery workers over Redis.

A job advances one step per task: ``flywheel.advance(job_id)`` runs the job's next step and, unless the job has
finished, sends the next ``flywheel.advance`` to the queue that step needs. Steps that use a model (evaluations,
training) go to the ``accelerator`` queue, whose workers run with concurrency = their GPU count; the cheap steps
(datasets, finalize) go to ``flywheel``. Several jobs therefore progress side by side without over-allocating GPUs.

CPU threads: a worker's processes split its CPU thread budget (``FLYWHEEL_CPU_THREADS``, default every core the
worker may use) between them, so that concurrency × threads per task never exceeds it (:func:`worker_cpu_plan`).
Without a GPU the accelerator queue's default concurrency is 1, and its one process runs each model step on every
core. ``--concurrency N`` gives each of the N processes ``budget // N`` threads (at least 1; more processes than
threads oversubscribes the cores, and the worker warns). With ``--pool threads`` the N tasks run in one process and
share its budget step by step. Like every flywheel process, the worker's processes also give up part of their
threads while other flywheel processes on the machine run model steps (see :mod:`flywheel.backends.local._threads`).

Crash safety:

* tasks are acknowledged only after they finish (``acks_late``) and re-queued when their worker process dies
  (``reject_on_worker_lost``); a worker killed outright leaves its message unacknowledged, and Redis hands it out
  again after the visibility timeout.
* the step itself is claimed in the database under a lease that a heartbeat keeps alive; a redelivered task for a
  step whose lease is still held does nothing, one whose lease expired re-runs the step from its start.
* queued work is never purged at worker start (unlike the reference's ``--purge``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from typing import Any

from flywheel.config import Settings
from flywheel.errors import require
from flywheel.service.jobs._rows import StepKind

log = logging.getLogger(__name__)

DEFAULT_QUEUE = "flywheel"
ACCELERATOR_QUEUE = "accelerator"

_RUNNER: Any = None


def queue_for(kind: StepKind | None) -> str:
    """The queue a step of ``kind`` runs on: steps that need a model go to the accelerator queue."""
    return ACCELERATOR_QUEUE if kind is not None and kind.needs_model else DEFAULT_QUEUE


def make_celery(settings: Settings, *, backends: Any = None) -> Any:
    """The Celery application for ``settings`` (broker: ``REDIS_URL``)."""
    require("celery", "service")
    from celery import Celery

    app = Celery("flywheel", broker=settings.redis_url, set_as_current=False)
    # Redis re-delivers an unacknowledged task after this long; leases and the recovery loop handle dead workers
    # much sooner, so this only needs to exceed the longest step.
    visibility = int(settings.config.executor.visibility_timeout_s)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=DEFAULT_QUEUE,
        broker_transport_options={
            "visibility_timeout": visibility,
            "global_keyprefix": settings.config.executor.queue_prefix,
        },
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        timezone="UTC",
    )

    def runner() -> Any:
        global _RUNNER
        if _RUNNER is None:
            from flywheel.service.jobs import JobRepository, JobRunner, default_backends
            from flywheel.store import open_store

            engine = open_store(settings.database_url)
            _RUNNER = JobRunner(
                JobRepository(engine),
                home=settings.home,
                backends=backends if backends is not None else default_backends(settings),
                env=settings.env,
                worker_id=f"celery@{socket.gethostname()}:{os.getpid()}",
                lease_s=settings.config.executor.lease_s,
            )
        return _RUNNER

    @app.task(name="flywheel.advance", bind=True, acks_late=True, reject_on_worker_lost=True)
    def advance(self: Any, job_id: str) -> str | None:
        job_runner = runner()
        step = job_runner.next_step(job_id)
        wanted = queue_for(step.kind if step is not None else None)
        here = (self.request.delivery_info or {}).get("routing_key")
        if here is not None and here != wanted and job_runner.repo.job(job_id).finished_at is None:
            app.send_task("flywheel.advance", args=[job_id], queue=wanted)  # wrong kind of worker: pass it on
            return None
        status = job_runner.advance(job_id)
        if status == "busy":
            # A live worker holds the step and will send the next advance itself; if it dies, its lease expires
            # and the recovery loop re-queues the job.
            return None
        if status is None:
            following = job_runner.next_step(job_id)
            app.send_task(
                "flywheel.advance", args=[job_id], queue=queue_for(following.kind if following else None)
            )
        return status

    app.flywheel_runner = runner  # type: ignore[attr-defined]
    return app


class CeleryExecutor:
    """Submits jobs to Celery workers (the API server's executor when ``executor.kind`` is ``celery``)."""

    def __init__(self, settings: Settings, engine: Any = None) -> None:
        self.app = make_celery(settings)
        self._recovery = None
        if engine is not None:
            from flywheel.service.workers._recovery import RecoveryLoop

            executor = settings.config.executor
            # A job that nothing touched for a few leases and no worker holds lost its message (e.g. Redis restarted
            # without persistence, or was down when the next step was sent): nudge it.
            idle_s = 3 * executor.lease_s
            self._recovery = RecoveryLoop(engine, self.submit, executor.heartbeat_s, idle_s=idle_s).start()

    def submit(self, job_id: str) -> None:
        self.app.send_task("flywheel.advance", args=[job_id], queue=DEFAULT_QUEUE)

    def stop(self, timeout: float | None = None) -> None:
        if self._recovery is not None:
            self._recovery.stop()
        self.app.close()


def pin_accelerator(index: int) -> None:
    """Give worker process ``index`` its own GPU, so concurrency = GPU count never shares a device."""
    if "CUDA_VISIBLE_DEVICES" in os.environ and "," not in os.environ["CUDA_VISIBLE_DEVICES"]:
        return
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    devices = visible.split(",") if visible else [str(i) for i in range(accelerator_count())]
    if devices:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices[index % len(devices)]


def accelerator_count() -> int:
    """CUDA devices on this machine (0 without torch or a GPU)."""
    try:
        import torch
    except ImportError:
        return 0
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def cpu_budget(settings: Settings) -> int:
    """The worker's CPU threads: ``FLYWHEEL_CPU_THREADS``, else every core this process may run on."""
    if settings.cpu_threads is not None:
        return settings.cpu_threads
    from flywheel.backends.local._threads import available_cores

    return available_cores()


def worker_cpu_plan(
    queues: list[str], concurrency: int | None, pool: str | None, *, gpus: int, cpu_threads: int
) -> tuple[int, int]:
    """``(worker processes or threads, CPU threads per task)`` for a worker on ``queues``.

    Concurrency defaults to the GPU count for the accelerator queue (1 without a GPU), else 1. The tasks of a prefork
    worker run in separate processes, which cannot share a budget, so each gets ``cpu_threads //
    concurrency`` (at least 1); those of a ``threads`` pool run in one process, whose engine steps divide its budget
    among themselves, so the process keeps all of it.
    """
    if concurrency is None:
        concurrency = max(1, gpus) if ACCELERATOR_QUEUE in queues else 1
    concurrency = 1 if pool == "solo" else max(1, concurrency)  # a solo pool runs one task at a time
    if pool == "threads":
        return concurrency, cpu_threads
    return concurrency, max(1, cpu_threads // concurrency)


def run_worker(
    settings: Settings, *, queues: list[str], concurrency: int | None, pool: str | None = None
) -> None:
    """Run a Celery worker in this process (``flywheel worker``)."""
    budget = cpu_budget(settings)
    concurrency, threads = worker_cpu_plan(
        queues, concurrency, pool, gpus=accelerator_count(), cpu_threads=budget
    )
    if pool != "threads" and concurrency > budget:
        log.warning(
            "%d worker processes on %d CPU threads: each runs its model steps on 1 thread, oversubscribing the "
            "cores; use --concurrency %d (or --pool threads), or raise FLYWHEEL_CPU_THREADS if the cores are there.",
            concurrency,
            budget,
            budget,
        )
    # Every task of this worker builds its backends from settings.env: each process gets its part of the budget.
    settings = dataclasses.replace(
        settings, cpu_threads=threads, env={**settings.env, "FLYWHEEL_CPU_THREADS": str(threads)}
    )
    log.info("worker concurrency %d, %d CPU threads per task (budget %d)", concurrency, threads, budget)
    app = make_celery(settings)
    if ACCELERATOR_QUEUE in queues and accelerator_count() > 1:
        from celery.signals import worker_process_init

        @worker_process_init.connect(weak=False)
        def _pin(**_: Any) -> None:
            from billiard.process import current_process

            pin_accelerator(getattr(current_process(), "index", 0) or 0)

    argv = [
        "worker",
        f"--queues={','.join(queues)}",
        f"--concurrency={concurrency}",
        f"--hostname=flywheel-{'-'.join(queues)}@%h",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
    ]
    if pool:
        argv.append(f"--pool={pool}")
    from flywheel.service.workers._recovery import RecoveryLoop
    from flywheel.store import open_store

    def submit(job_id: str) -> None:
        app.send_task("flywheel.advance", args=[job_id], queue=DEFAULT_QUEUE)

    recovery = RecoveryLoop(
        open_store(settings.database_url), submit, settings.config.executor.heartbeat_s
    ).start()
    log.info("starting Celery worker: %s", " ".join(argv))
    try:
        app.worker_main(argv)
    finally:
        recovery.stop()
