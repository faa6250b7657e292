"""Jobs ("flywheel runs"): durable state in the store, the step runner, and submission.

``submit_job`` creates a job; a ``JobRunner`` runs it (in-process or in a Celery worker); ``JobRepository`` reads
and changes its state (detail in the reference's shape, cancel, delete).
"""

from flywheel.service.jobs._backends import BackendFactory, ConfiguredBackends, default_backends
from flywheel.service.jobs._detail import iso
from flywheel.service.jobs._plan import JobSettings, job_dir, plan_steps
from flywheel.service.jobs._report import job_report, job_samples, report_settings, teacher_model_from_logs
from flywheel.service.jobs._repository import JobRepository
from flywheel.service.jobs._rows import ACTIVE, TERMINAL, JobRow, StepKind, StepRow, StepSpec
from flywheel.service.jobs._runner import JobRunner
from flywheel.service.jobs._submit import JobRequest, effective_config, remove_job, submit_job

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "BackendFactory",
    "ConfiguredBackends",
    "JobRepository",
    "JobRequest",
    "JobRow",
    "JobRunner",
    "JobSettings",
    "StepKind",
    "StepRow",
    "StepSpec",
    "default_backends",
    "effective_config",
    "iso",
    "job_dir",
    "job_report",
    "job_samples",
    "plan_steps",
    "remove_job",
    "report_settings",
    "submit_job",
    "teacher_model_from_logs",
]
