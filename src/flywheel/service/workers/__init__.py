"""Executors that run jobs: in-process threads (embedded default) or Celery workers (scale-out)."""

from typing import Any

from flywheel.service.workers._inprocess import InProcessExecutor, resumable_jobs, start_inprocess_executor


def start_executor(settings: Any, engine: Any, *, backends: Any = None) -> Any:
    """The executor ``settings.config.executor.kind`` asks for, ready to ``submit(job_id)``."""
    if settings.config.executor.kind == "celery":
        from flywheel.service.workers._celery import CeleryExecutor

        return CeleryExecutor(settings, engine)
    return start_inprocess_executor(settings, engine, backends=backends)


__all__ = ["InProcessExecutor", "resumable_jobs", "start_executor", "start_inprocess_executor"]
