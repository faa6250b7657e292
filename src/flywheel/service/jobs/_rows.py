"""Typed rows of the job tables, as the repository hands them to the runner and the workers.

A step's kind is a :class:`StepKind` and its candidate is named, so nothing parses ``"base-eval:model"`` strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from flywheel.pipeline.report import DatasetEntry

TERMINAL = frozenset({"completed", "failed", "cancelled"})
ACTIVE = frozenset({"pending", "running"})
#: Statuses after which a step is never run again.
STEP_ENDED = frozenset({"completed", "skipped", "failed", "cancelled"})


class StepKind(StrEnum):
    """What a step does; the values are stored in ``job_steps.kind``."""

    DATASETS = "datasets"
    BASE_EVAL = "base-eval"
    ICL_EVAL = "icl-eval"
    CUSTOMIZATION = "customization"
    CUSTOMIZED_EVAL = "customized-eval"
    FINALIZE = "finalize"

    @property
    def is_evaluation(self) -> bool:
        return self in (StepKind.BASE_EVAL, StepKind.ICL_EVAL, StepKind.CUSTOMIZED_EVAL)

    @property
    def needs_model(self) -> bool:
        """Steps that load or call a model (and so want an accelerator when there is one)."""
        return self.is_evaluation or self is StepKind.CUSTOMIZATION


@dataclass(frozen=True)
class StepSpec:
    """One planned step of a job."""

    kind: StepKind
    candidate: str | None = None

    @property
    def name(self) -> str:
        """The step's stored name: ``datasets``, ``base-eval:<candidate>`` …"""
        return f"{self.kind.value}:{self.candidate}" if self.candidate else self.kind.value


@dataclass(frozen=True)
class StepRow:
    """One durable step of a job."""

    id: str
    job_id: str
    position: int
    name: str
    kind: StepKind
    candidate_id: str | None
    candidate: str | None  # the candidate's model name
    status: str
    progress: float
    attempts: int
    worker_id: str | None
    lease_expires_at: float | None
    started_at: float | None
    finished_at: float | None
    error: str | None
    result: dict[str, Any] | None

    @property
    def ended(self) -> bool:
        return self.status in STEP_ENDED


@dataclass(frozen=True)
class JobRow:
    """A job's own row, its JSON columns parsed."""

    id: str
    workload_id: str
    client_id: str
    status: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    num_records: int
    error: str | None
    request: dict[str, Any]
    config: dict[str, Any]
    datasets: list[DatasetEntry]
    manifest: dict[str, Any] | None
    cancel_requested: bool


def loads(text: str | None, default: Any = None) -> Any:
    """JSON column → value (``default`` for NULL or empty)."""
    return orjson.loads(text) if text else default


def dumps(value: Any) -> str:
    """Value → JSON column (numpy scalars and arrays allowed)."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def job_row(row: Any) -> JobRow:
    return JobRow(
        id=row.id,
        workload_id=row.workload_id,
        client_id=row.client_id,
        status=row.status,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        num_records=row.num_records or 0,
        error=row.error,
        request=loads(row.request, {}),
        config=loads(row.config, {}),
        datasets=loads(row.datasets, []),
        manifest=loads(row.manifest, None),
        cancel_requested=bool(row.cancel_requested),
    )


def step_row(row: Any, candidate: str | None) -> StepRow:
    return StepRow(
        id=row.id,
        job_id=row.job_id,
        position=row.position,
        name=row.name,
        kind=StepKind(row.kind),
        candidate_id=row.candidate_id,
        candidate=candidate,
        status=row.status,
        progress=row.progress,
        attempts=row.attempts,
        worker_id=row.worker_id,
        lease_expires_at=row.lease_expires_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        error=row.error,
        result=loads(row.result, None),
    )
