"""Curation: select a workload's records from the store, validate them, decide the workload type, deduplicate,
and (optionally) mask personal data.

Every transform is a pure ``record -> record | Rejected`` function; rejected records are counted by reason.
"""

from flywheel.pipeline.curate._curate import (
    WORKLOAD_TYPES,
    Curation,
    CurationCounts,
    Scan,
    curate,
    finish_curation,
    merge_scans,
    scan_records,
)
from flywheel.pipeline.curate._dedup import ExactDeduplicator, MinHashDeduplicator, dedup_key, normalise
from flywheel.pipeline.curate._pii import iban_ok, luhn_ok, mask_record, mask_text
from flywheel.pipeline.curate._select import row_timestamp, selection_query, stream_records
from flywheel.pipeline.curate._validate import (
    Rejected,
    check_workload_fit,
    classification_label,
    parse_arguments,
    record_label,
    user_texts,
    validate_record,
)
from flywheel.pipeline.curate._workload import (
    MAJORITY,
    EvidenceSummary,
    WorkloadEvidence,
    decide_workload_type,
)

__all__ = [
    "MAJORITY",
    "WORKLOAD_TYPES",
    "Curation",
    "CurationCounts",
    "EvidenceSummary",
    "ExactDeduplicator",
    "MinHashDeduplicator",
    "Rejected",
    "Scan",
    "WorkloadEvidence",
    "check_workload_fit",
    "classification_label",
    "curate",
    "decide_workload_type",
    "dedup_key",
    "finish_curation",
    "iban_ok",
    "luhn_ok",
    "mask_record",
    "mask_text",
    "merge_scans",
    "normalise",
    "parse_arguments",
    "record_label",
    "row_timestamp",
    "scan_records",
    "selection_query",
    "stream_records",
    "user_texts",
    "validate_record",
]
