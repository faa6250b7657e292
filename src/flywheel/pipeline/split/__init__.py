"""Class-aware stratified eval / train / val split that never crashes and records its fallbacks."""

from flywheel.pipeline.split._checks import check_raw_count, check_selected_count
from flywheel.pipeline.split._split import OTHERS, UNLABELLED, SplitResult, planned_sizes, split_records

__all__ = [
    "OTHERS",
    "UNLABELLED",
    "SplitResult",
    "check_raw_count",
    "check_selected_count",
    "planned_sizes",
    "split_records",
]
