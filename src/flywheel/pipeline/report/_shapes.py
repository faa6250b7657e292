"""The shapes of a job's detail (what ``GET /api/jobs/{id}`` returns, the report's input) and of its report.

Static types for plain dicts: ``JobRepository.detail`` builds a :class:`JobDetail`, :func:`build_report` turns it
into a :class:`Report`, and the renderers, the export and the dashboard read them. The reference's keys come first in
each shape; flywheel's additions (n, intervals, usage, dataset stats, steps) follow.

Kept as types only (the dataset parts are imported for the type checker alone, so that importing the report does not
import the datasets stage): do not hand them to pydantic or FastAPI as models, which would validate and drop keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from flywheel.pipeline.report._cost import CostJSON

if TYPE_CHECKING:
    from flywheel.pipeline.datasets import DatasetStats


class _MetricCore(TypedDict):
    value: float | None
    n: int
    ci_low: float | None
    ci_high: float | None
    confidence: float
    #: ``computed`` or ``not_computed`` (then ``reason`` says why and ``value`` is None).
    status: str


# ``total=False`` on a subclass rather than ``NotRequired``: under ``from __future__ import annotations`` Python 3.11
# cannot see ``NotRequired`` in the string annotations, and ``__required_keys__`` would be wrong at run time.
class Metric(_MetricCore, total=False):
    """One aggregate (``MetricResult.to_json()``): value, the samples it rests on and its confidence interval."""

    reason: str
    #: Samples a judge could not grade (excluded from ``n``).
    no_grade: int


class Throughput(TypedDict):
    """How fast the candidate answered during an evaluation (None when it was not timed)."""

    generation_seconds: float | None
    requests_per_s: float | None


# ---------------------------------------------------------------------------------------------- job detail


class JudgeDetail(TypedDict):
    """The job's LLM judge (``llm_judge``)."""

    model_name: str | None
    type: str | None
    deployment_status: str
    error: str | None


class DatasetEntry(TypedDict):
    """One dataset the job built (``datasets[]``), named as the reference names them."""

    name: str
    num_records: int
    nmp_uri: str | None
    path: str


class EvaluationDetail(TypedDict):
    """One evaluation of a candidate (``nims[].evaluations[]``)."""

    #: ``base-eval``, ``icl-eval`` or ``customized-eval``.
    eval_type: str
    #: The reference's scores: computed metric values by name.
    scores: dict[str, float]
    started_at: str | None
    finished_at: str | None
    runtime_seconds: float | None
    progress: float | None
    nmp_uri: str | None
    mlflow_uri: str | None
    error: str | None
    status: str
    metrics: dict[str, Metric]
    #: Latency and token figures of the candidate and the teacher (``latency_p50_s``, ``prompt_tokens_mean``,
    #: ``teacher_prompt_tokens_mean``, …).
    usage: dict[str, Metric]
    throughput: Throughput | None
    #: Samples scored.
    n: int | None


class CustomizationDetail(TypedDict):
    """One fine-tuning of a candidate (``nims[].customizations[]``)."""

    started_at: str | None
    finished_at: str | None
    runtime_seconds: float | None
    progress: float | None
    epochs_completed: int | None
    steps_completed: int | None
    nmp_uri: str | None
    customized_model: str | None
    error: str | None
    status: str
    #: Loss curves (``train_loss``/``val_loss``: ``[[step, loss], …]``), ``summary`` and ``stopped_early``.
    metrics: dict[str, Any]


class CandidateDetail(TypedDict):
    """One candidate model of the job (``nims[]``)."""

    model_name: str
    status: str
    deployment_status: str | None
    runtime_seconds: float | None
    error: str | None
    evaluations: list[EvaluationDetail]
    customizations: list[CustomizationDetail]


class StepDetail(TypedDict):
    """One durable step of the job (``steps[]``)."""

    name: str
    kind: str
    status: str
    progress: float | None
    attempts: int
    started_at: str | None
    finished_at: str | None
    error: str | None


class JobDetail(TypedDict):
    """A job in the reference's ``JobDetailResponse`` shape, with flywheel's additions."""

    id: str
    workload_id: str
    client_id: str
    status: str
    started_at: str | None
    finished_at: str | None
    num_records: int | None
    error: str | None
    llm_judge: JudgeDetail | None
    datasets: list[DatasetEntry]
    nims: list[CandidateDetail]
    # flywheel's additions
    workload_type: str | None
    dataset_stats: DatasetStats | None
    steps: list[StepDetail]


# ---------------------------------------------------------------------------------------------- report


class CostModel(TypedDict):
    """The basis every cost in the report is on, its unit and the formulas."""

    #: ``prices`` or ``parameters``.
    basis: str
    #: ``USD`` or ``PFLOP``.
    unit: str
    formulas: dict[str, str]


class TeacherSummary(TypedDict):
    """The teacher: size, logged token means and cost per 1M requests."""

    model: str | None
    parameters_b: float | None
    prompt_tokens_mean: float | None
    completion_tokens_mean: float | None
    #: False when the logs carry no usage and the candidate's base-eval token counts stand in.
    usage_logged: bool
    n: int | None
    cost: CostJSON


class ReportEvaluation(TypedDict):
    """One evaluation of a candidate, priced and held to the thresholds."""

    #: ``base``, ``icl`` or ``customized``.
    eval_type: str
    status: str | None
    error: str | None
    progress: float | None
    n: int | None
    metrics: dict[str, Metric]
    #: ``latency_p50_s``, ``latency_p95_s``, ``prompt_tokens_mean``, ``completion_tokens_mean`` (None if missing).
    usage: dict[str, Metric | None]
    requests_per_s: float | None
    cost: CostJSON
    saving_pct: float | None
    qualifies: bool
    #: Why it does not qualify, one sentence per missed threshold.
    shortfalls: list[str]


class ReportCustomization(TypedDict):
    """The candidate's last fine-tuning, with its loss curves."""

    status: str | None
    progress: float | None
    steps_completed: int | None
    epochs_completed: int | None
    runtime_seconds: float | None
    train_loss: list[list[float]]
    val_loss: list[list[float]]
    best_val_loss: float | None
    stopped_early: bool | None
    customized_model: str | None
    error: str | None


class ReportCandidate(TypedDict):
    """One candidate model: its evaluations and its fine-tuning."""

    model_name: str
    status: str | None
    error: str | None
    parameters_b: float | None
    evaluations: list[ReportEvaluation]
    customization: ReportCustomization | None


class NearMiss(TypedDict):
    """The evaluation that came closest when none qualifies."""

    candidate: str
    eval_type: str
    score: float | None
    ci_low: float | None
    ci_high: float | None
    n: int | None
    cost_per_1m_requests: float | None
    saving_pct: float | None
    shortfalls: list[str]


class Recommendation(TypedDict):
    """Which candidate can replace the teacher, or why none can yet."""

    #: ``recommended``, ``no_candidate`` or ``pending``.
    status: str
    message: str
    metric: str
    thresholds: dict[str, float]
    threshold: float | None
    candidate: str | None
    eval_type: str | None
    score: float | None
    ci_low: float | None
    ci_high: float | None
    n: int | None
    cost_per_1m_requests: float | None
    saving_pct: float | None
    near_miss: NearMiss | None
    advice: list[str]
    #: The ``flywheel export`` command for a recommended fine-tuned candidate.
    next_step: str | None
    auto_deploy: bool


class ReportProgress(TypedDict):
    """How far the job's steps are."""

    steps_total: int
    steps_done: int
    percent: float
    running: list[str]


class Report(TypedDict):
    """A job's report (see :mod:`flywheel.pipeline.report._report`)."""

    job_id: str
    workload_id: str | None
    client_id: str | None
    status: str | None
    workload_type: str | None
    error: str | None
    started_at: str | None
    finished_at: str | None
    generated_at: str
    primary_metric: str
    thresholds: dict[str, float]
    notes: list[str]
    cost_model: CostModel
    teacher: TeacherSummary
    candidates: list[ReportCandidate]
    recommendation: Recommendation
    dataset_stats: DatasetStats | None
    progress: ReportProgress
