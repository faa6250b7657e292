"""Reports: scores with intervals, latency and cost against the teacher, and which candidate can replace it.

``build_report(detail, ReportSettings(...))`` turns a job's detail into the report; ``render_markdown`` and
``render_text`` print it. The cost model and its formulas are documented in ``flywheel.pipeline.report._cost``; the
shapes of the job detail (:class:`JobDetail`) and of the report (:class:`Report`) in ``_shapes``.
"""

from flywheel.pipeline.report._cost import (
    FORMULAS,
    Cost,
    CostJSON,
    Price,
    Usage,
    parameter_cost,
    parameters_from_name,
    priced_cost,
    saving_pct,
)
from flywheel.pipeline.report._recommend import DEFAULT_MIN_SCORE, primary_metric
from flywheel.pipeline.report._render import format_metric, markdown_table, render_markdown
from flywheel.pipeline.report._report import EVAL_TYPES, ReportSettings, build_report
from flywheel.pipeline.report._shapes import (
    CandidateDetail,
    CostModel,
    CustomizationDetail,
    DatasetEntry,
    EvaluationDetail,
    JobDetail,
    JudgeDetail,
    Metric,
    NearMiss,
    Recommendation,
    Report,
    ReportCandidate,
    ReportCustomization,
    ReportEvaluation,
    ReportProgress,
    StepDetail,
    TeacherSummary,
    Throughput,
)

__all__ = [
    "DEFAULT_MIN_SCORE",
    "EVAL_TYPES",
    "FORMULAS",
    "CandidateDetail",
    "Cost",
    "CostJSON",
    "CostModel",
    "CustomizationDetail",
    "DatasetEntry",
    "EvaluationDetail",
    "JobDetail",
    "JudgeDetail",
    "Metric",
    "NearMiss",
    "Price",
    "Recommendation",
    "Report",
    "ReportCandidate",
    "ReportCustomization",
    "ReportEvaluation",
    "ReportProgress",
    "ReportSettings",
    "StepDetail",
    "TeacherSummary",
    "Throughput",
    "Usage",
    "build_report",
    "format_metric",
    "markdown_table",
    "parameter_cost",
    "parameters_from_name",
    "priced_cost",
    "primary_metric",
    "render_markdown",
    "saving_pct",
]
