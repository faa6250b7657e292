"""The shapes of the API's answers, as the client returns them (plain dicts, typed for the type checker).

The job detail (:class:`JobDetail`) and the report (:class:`Report`) are the server's own TypedDicts, imported from
:mod:`flywheel.pipeline.report` (a light module: no FastAPI, no SQLAlchemy), so each has one definition. The others
mirror response models of :mod:`flywheel.service.api` (pydantic models there, which a client must not import: they
pull FastAPI) and the row dicts of the job list and the samples; ``tests/client/test_types.py`` checks that the keys
here are the keys the server sends.
"""

from __future__ import annotations

from typing import Any, TypedDict

from flywheel.pipeline.report import DatasetEntry, JobDetail, Metric, Report


class Health(TypedDict):
    """``GET /health``."""

    status: str
    version: str


class JobCreated(TypedDict):
    """``POST /api/jobs``: the new job's id; ``status`` is always ``queued`` (as in the reference)."""

    id: str
    status: str
    message: str


class JobSummary(TypedDict):
    """A job as ``GET /api/jobs`` lists it."""

    id: str
    workload_id: str
    client_id: str
    status: str
    started_at: str | None
    finished_at: str | None
    datasets: list[DatasetEntry]
    error: str | None


class JobPage(TypedDict):
    """``GET /api/jobs``: one page of jobs and how many match the filters."""

    jobs: list[JobSummary]
    total: int
    limit: int
    offset: int


class JobAction(TypedDict):
    """``POST /api/jobs/{id}/cancel`` and ``DELETE /api/jobs/{id}``."""

    id: str
    message: str


class JudgeVerdict(TypedDict):
    """An LLM judge's grade of one sample (``samples[].judge[]``)."""

    metric: str | None
    score: float | None
    explanation: str | None
    reply: str | None
    judge_model: str | None


class Sample(TypedDict):
    """One evaluated sample: the teacher's answer against the candidate's, with its scores."""

    candidate: str
    #: ``base``, ``icl`` or ``customized``.
    eval_type: str
    index: int
    record_id: str | None
    score: float | None
    scores: dict[str, float | None]
    labels: Any
    prompt_excerpt: str | None
    teacher: Any
    answer: Any
    candidate_error: str | None
    judge: list[JudgeVerdict]
    latency_s: float | None


class SamplePage(TypedDict):
    """``GET /api/jobs/{id}/samples``: lowest score first."""

    samples: list[Sample]
    total: int
    limit: int
    offset: int


class IngestItemError(TypedDict):
    """Why one item of a ``POST /api/logs`` body was quarantined."""

    #: Position of the item in the body, or, in :class:`IngestSummary`, in the records given to ``logs()``.
    index: int
    reason: str
    detail: str


class IngestResult(TypedDict):
    """``POST /api/logs``: what one request stored."""

    ingestion_id: str
    total: int
    accepted: int
    duplicates: int
    quarantined: int
    quarantine_reasons: dict[str, int]
    errors: list[IngestItemError]


class IngestSummary(TypedDict):
    """What ``Client.logs()`` stored, over every request it sent (the server takes at most 10,000 records a
    request): the counts of :class:`IngestResult` summed, ``errors`` indexed in the records given."""

    #: One per request sent, in order (empty when there was nothing to send).
    ingestion_ids: list[str]
    total: int
    accepted: int
    duplicates: int
    quarantined: int
    quarantine_reasons: dict[str, int]
    errors: list[IngestItemError]


class QuarantinedRecord(TypedDict):
    """A line or item ingestion rejected (``GET /api/quarantine/{id}``)."""

    id: int
    ingestion_id: str | None
    source: str
    line_number: int | None
    reason: str
    raw: str
    created_at: str


class QuarantinePage(TypedDict):
    """``GET /api/quarantine``: newest first by default."""

    records: list[QuarantinedRecord]
    total: int
    limit: int
    offset: int


__all__ = [
    "DatasetEntry",
    "Health",
    "IngestItemError",
    "IngestResult",
    "IngestSummary",
    "JobAction",
    "JobCreated",
    "JobDetail",
    "JobPage",
    "JobSummary",
    "JudgeVerdict",
    "Metric",
    "QuarantinePage",
    "QuarantinedRecord",
    "Report",
    "Sample",
    "SamplePage",
]
