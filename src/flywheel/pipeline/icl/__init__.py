"""Few-shot (in-context learning) eval sets built from train records: uniform or semantic-similarity selection."""

from flywheel.pipeline.icl._embedders import embedder_from_config
from flywheel.pipeline.icl._examples import (
    DEFAULT_INTRO,
    Example,
    Tokenizer,
    available_tokens,
    count_tokens,
    fit_examples,
    format_example,
    inject_examples,
    last_user_query,
    make_example,
    teacher_tool_name,
    uniform_bins,
)
from flywheel.pipeline.icl._index import VectorIndex
from flywheel.pipeline.icl._select import (
    ICLStats,
    ICLSummary,
    build_icl_records,
    relevance_coverage,
    uniform_groups,
)

__all__ = [
    "DEFAULT_INTRO",
    "Example",
    "ICLStats",
    "ICLSummary",
    "Tokenizer",
    "VectorIndex",
    "available_tokens",
    "build_icl_records",
    "count_tokens",
    "embedder_from_config",
    "fit_examples",
    "format_example",
    "inject_examples",
    "last_user_query",
    "make_example",
    "relevance_coverage",
    "teacher_tool_name",
    "uniform_bins",
    "uniform_groups",
]
