"""Turning a job request into a durable job: validate overrides, freeze the effective configuration, plan steps."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flywheel.config import FlywheelConfig
from flywheel.errors import ConfigError
from flywheel.service.jobs._plan import job_dir, plan_steps
from flywheel.service.jobs._repository import JobRepository


class JobRequest(BaseModel):
    """Body of ``POST /api/jobs`` (the reference's fields plus flywheel's optional overrides)."""

    model_config = ConfigDict(extra="forbid")

    workload_id: str = Field(min_length=1, description="Workload whose logs are used.")
    client_id: str = Field(min_length=1, description="Client whose logs are used.")
    data_split_config: dict[str, Any] | None = Field(None, description="Overrides of data_split_config.")
    icl_config: dict[str, Any] | None = Field(None, description="Overrides of icl_config.")
    evaluation_config: dict[str, Any] | None = Field(None, description="Overrides of evaluation_config.")
    candidates: list[str] | None = Field(None, description="Run only these candidates (nims[].model_name).")
    since: float | None = Field(None, description="Only logs at or after this time (epoch seconds).")
    until: float | None = Field(None, description="Only logs before this time (epoch seconds).")


def effective_config(config: FlywheelConfig, request: JobRequest) -> FlywheelConfig:
    """The configuration a job runs with: the file, per-job overrides applied, candidates narrowed."""
    from flywheel.pipeline.datasets import resolve_data_settings

    overrides = {
        key: value
        for key, value in (
            ("data_split_config", request.data_split_config),
            ("icl_config", request.icl_config),
            ("evaluation_config", request.evaluation_config),
        )
        if value is not None
    }
    settings = resolve_data_settings(config, overrides)  # raises ConfigError listing every problem
    nims = config.nims
    if request.candidates is not None:
        known = {n.model_name for n in nims}
        unknown = [c for c in request.candidates if c not in known]
        if unknown:
            raise ConfigError(
                f"Unknown candidate(s) {', '.join(map(repr, unknown))}; configured: {', '.join(sorted(known)) or 'none'}.",
                [("candidates", f"unknown: {', '.join(unknown)}")],
            )
        nims = [n for n in nims if n.model_name in set(request.candidates)]
    from flywheel.backends.registry import backend_names

    known_backends = backend_names()
    bad = [(i, n) for i, n in enumerate(nims) if n.backend not in known_backends]
    if bad:
        raise ConfigError(
            "Unknown backend for "
            + ", ".join(f"{n.model_name!r} ({n.backend!r})" for _, n in bad)
            + f"; known backends: {', '.join(known_backends)}.",
            [(f"nims[{i}].backend", f"unknown backend {n.backend!r}") for i, n in bad],
        )
    if not nims:
        raise ConfigError(
            "No candidate to run: add a model under nims in the configuration file.", [("nims", "empty")]
        )
    return config.model_copy(
        update={
            "data_split_config": settings.split,
            "icl_config": settings.icl,
            "evaluation_config": settings.evaluation,
            "curation": settings.curation,
            "nims": nims,
        }
    )


def submit_job(repo: JobRepository, config: FlywheelConfig, request: JobRequest) -> str:
    """Validate ``request`` against ``config`` and create the job with its steps; return the job id."""
    effective = effective_config(config, request)
    names = [n.model_name for n in effective.nims]
    job_id = repo.create_job(
        request.workload_id,
        request.client_id,
        request=request.model_dump(mode="json", exclude_none=True),
        config=effective.model_dump(mode="json"),
        candidates=names,
        steps=plan_steps(effective, names),
    )
    return job_id


def remove_job(repo: JobRepository, home: Path, job_id: str) -> None:
    """Delete a finished job's rows, files and tracking entries (ConflictError while it is active)."""
    config = FlywheelConfig.model_validate(repo.job_config(job_id))
    repo.delete_job(job_id)
    shutil.rmtree(job_dir(home, job_id), ignore_errors=True)
    if config.mlflow_config.enabled:
        from flywheel.service.jobs._mlflow import delete_experiment

        delete_experiment(config.mlflow_config, job_id)
