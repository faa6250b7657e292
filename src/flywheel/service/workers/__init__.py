"""Executors that run jobs: in-process threads (embedded default) or Celery workers (scale-out)."""

from flywheel.service.workers._inprocess import InProcessExecutor, resumable_jobs, start_inprocess_executor

__all__ = ["InProcessExecutor", "resumable_jobs", "start_inprocess_executor"]
