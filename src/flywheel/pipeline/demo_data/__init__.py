"""Demo workloads built at run time from PyPI data packages (BBC news classification, BFCL v3 live tool calling)."""

from flywheel.pipeline.demo_data._demo import (
    BFCL_LIVE_CATEGORIES,
    CLASSIFICATION_WORKLOAD,
    DEMO_CLIENT,
    TEACHER_MODEL,
    TOOL_CALLING_WORKLOAD,
    classification_logs,
    json_schema,
    openai_function_name,
    tool_calling_logs,
    write_demo_logs,
)

__all__ = [
    "BFCL_LIVE_CATEGORIES",
    "CLASSIFICATION_WORKLOAD",
    "DEMO_CLIENT",
    "TEACHER_MODEL",
    "TOOL_CALLING_WORKLOAD",
    "classification_logs",
    "json_schema",
    "openai_function_name",
    "tool_calling_logs",
    "write_demo_logs",
]
