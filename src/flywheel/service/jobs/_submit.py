"""Turning a job request into a durable job: validate overrides, freeze the effective configuration, plan steps."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from flywheel.config import FlywheelConfig, time_window_problems
from flywheel.errors import ConfigError
from flywheel.service.jobs._plan import job_dir, plan_steps
from flywheel.service.jobs._repository import JobRepository
from flywheel.store import NAME_CHARS

#: Text the store keeps in a name column: 1 to NAME_CHARS characters, no NUL (PostgreSQL text cannot hold one).
_Name = Annotated[str, Field(min_length=1, max_length=NAME_CHARS, pattern=r"^[^\x00]*$")]
#: The last second a datetime can hold (9999-12-31T23:59:59 UTC), as epoch seconds.
MAX_EPOCH_S = 253402300799.0
#: Integers the store's JSON and both databases hold: signed 64 bits.
_INT64 = (-(2**63), 2**63 - 1)


def _check_storable(value: Any, path: str) -> None:
    """Raise ValueError naming the key path of a value the store cannot keep: an integer beyond 64 bits, a number
    that is not finite, or a string with an unpaired surrogate (not UTF-8). The overrides' own bounds are the
    configuration's, checked when the job is planned; these are the bounds of storing the request at all."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_storable(key, path)
            _check_storable(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_storable(item, f"{path}[{i}]")
    elif isinstance(value, bool):
        pass
    elif isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
        raise ValueError(f"{path}: integer out of range (at most 64 bits: {_INT64[0]} to {_INT64[1]})")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path}: number must be finite")
    elif isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{path}: text is not valid Unicode (unpaired surrogate)") from None


class JobRequest(BaseModel):
    """Body of ``POST /api/jobs`` (the reference's fields plus flywheel's optional overrides)."""

    model_config = ConfigDict(extra="forbid")

    workload_id: _Name = Field(description="Workload whose logs are used.")
    client_id: _Name = Field(description="Client whose logs are used.")
    data_split_config: dict[str, Any] | None = Field(None, description="Overrides of data_split_config.")
    icl_config: dict[str, Any] | None = Field(None, description="Overrides of icl_config.")
    evaluation_config: dict[str, Any] | None = Field(None, description="Overrides of evaluation_config.")
    candidates: list[_Name] | None = Field(
        None, max_length=1000, description="Run only these candidates (nims[].model_name)."
    )
    since: float | None = Field(
        None,
        ge=0.0,
        le=MAX_EPOCH_S,
        allow_inf_nan=False,
        strict=True,  # a number, as the schema says: JSON true/false or "5" are refused, not coerced
        description="Only logs at or after this time (epoch seconds).",
    )
    until: float | None = Field(
        None,
        ge=0.0,
        le=MAX_EPOCH_S,
        allow_inf_nan=False,
        strict=True,
        description="Only logs before this time (epoch seconds).",
    )

    @field_validator("*")
    @classmethod
    def _storable(cls, value: Any, info: Any) -> Any:
        _check_storable(value, info.field_name)
        return value

    @field_validator("until")
    @classmethod
    def _until_after_since(cls, until: float | None, info: ValidationInfo) -> float | None:
        # "since" is validated first (declared first); when it failed it is absent and only its own error shows.
        problems = time_window_problems(info.data.get("since"), until)
        if problems:
            raise ValueError(problems[0][1])
        return until


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
            configured = ", ".join(sorted(known)) or "none"
            raise ConfigError(
                f"Unknown candidate(s) {', '.join(map(repr, unknown))}; configured: {configured}.",
                [("candidates", f"unknown: {', '.join(unknown)} (configured: {configured})")],
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
            [
                (f"nims[{i}].backend", f"unknown backend {n.backend!r}; known: {', '.join(known_backends)}")
                for i, n in bad
            ],
        )
    if not nims:
        raise ConfigError(
            "No candidate to run: add a model under nims in the configuration file.",
            [("nims", "empty: add a model under nims in the configuration file")],
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
