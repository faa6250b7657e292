"""Reports: scores with intervals, latency and cost against the teacher, and which candidate can replace it.

``build_report(detail, ReportSettings(...))`` turns a job's detail into the report; ``render_markdown`` and
``render_text`` print it. The cost model and its formulas are documented in ``flywheel.pipeline.report._cost``.
"""

from flywheel.pipeline.report._cost import (
    FORMULAS,
    Cost,
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

__all__ = [
    "DEFAULT_MIN_SCORE",
    "EVAL_TYPES",
    "FORMULAS",
    "Cost",
    "Price",
    "ReportSettings",
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
