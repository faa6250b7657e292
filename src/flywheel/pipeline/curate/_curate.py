"""One pass over the streamed records: validation, workload evidence, workload-type filter and deduplication.

Only compact facts are kept per record (position in the stream, label, dedup key), so that a million records fit in
a few hundred megabytes; the datasets step streams the chosen records again to write them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypedDict

import orjson

from flywheel.pipeline.curate._dedup import ExactDeduplicator, MinHashDeduplicator, dedup_key
from flywheel.pipeline.curate._validate import (
    HAS_TOOL_CALL,
    NO_LABEL,
    NO_TOOL_CALL,
    UNPARSEABLE,
    Rejected,
    check_workload_fit,
    classification_label,
    user_texts,
    validate_record,
)
from flywheel.pipeline.curate._workload import WorkloadEvidence, decide_workload_type
from flywheel.pipeline.records import RecordView

WORKLOAD_TYPES = ("tool_calling", "classification", "generic")


class _Candidate(NamedTuple):
    """Compact facts about one format-valid record (a tuple: cheap to keep by the million and to pickle)."""

    position: int
    tool: str | None
    label: str | None
    key: bytes | None
    misfit: tuple[str | None, str | None, str | None]  # reason per WORKLOAD_TYPES entry, None = fits
    text: str | None


@dataclass
class Scan:
    """What one pass over (a range of) the stream found, before the workload type is applied."""

    total: int
    row_ids: list[int]
    candidates: list[_Candidate]
    rejected: Counter[str]
    evidence: WorkloadEvidence


def merge_scans(scans: list[Scan]) -> Scan:
    """Join the scans of consecutive stream ranges (each numbered from 0) into one, positions renumbered."""
    merged = Scan(total=0, row_ids=[], candidates=[], rejected=Counter(), evidence=WorkloadEvidence())
    for scan in scans:
        offset = merged.total
        merged.candidates.extend(c._replace(position=c.position + offset) for c in scan.candidates)
        merged.row_ids.extend(scan.row_ids)
        merged.rejected.update(scan.rejected)
        merged.evidence.records_examined += scan.evidence.records_examined
        merged.evidence.with_tool_calls += scan.evidence.with_tool_calls
        merged.evidence.with_label += scan.evidence.with_label
        merged.total += scan.total
    return merged


class CurationCounts(TypedDict):
    """Records left after each curation step (the manifest's ``steps``)."""

    total: int
    valid_format: int
    after_quality_filter: int
    rejected_total: int
    deduplicated: int
    near_duplicates: int
    beyond_limit: int
    selected: int


@dataclass
class Curation:
    """The outcome of curation: which stream positions were selected, their labels, and the counts."""

    workload_type: str
    evidence: WorkloadEvidence
    total: int
    positions: list[int]
    labels: list[str | None]
    keys: list[bytes | None]
    row_ids: list[int]
    rejected: Counter[str] = field(default_factory=Counter)
    valid_format: int = 0
    after_quality_filter: int = 0
    deduplicated: int = 0
    near_duplicates: int = 0
    beyond_limit: int = 0

    def counts(self) -> CurationCounts:
        """Counts at every step, for the manifest."""
        return {
            "total": self.total,
            "valid_format": self.valid_format,
            "after_quality_filter": self.after_quality_filter,
            "rejected_total": sum(self.rejected.values()),
            "deduplicated": self.deduplicated,
            "near_duplicates": self.near_duplicates,
            "beyond_limit": self.beyond_limit,
            "selected": len(self.positions),
        }


def _facts(position: int, record: dict[str, Any], keep_text: bool) -> _Candidate:
    view = RecordView(record)
    tool = view.teacher_tool_name
    class_label: str | None = None
    if view.teacher_tool_calls:
        misfit: tuple[str | None, str | None, str | None] = (
            check_workload_fit(view, "tool_calling"),
            HAS_TOOL_CALL,
            None,
        )
    else:
        class_label = classification_label(view.teacher_content)
        misfit = (NO_TOOL_CALL, None if class_label is not None else NO_LABEL, None)
    texts = user_texts(view)
    # positional: keyword construction of a NamedTuple costs twice as much, and this runs once per record
    return _Candidate(
        position,
        tool,
        tool if tool is not None else class_label,
        dedup_key(texts),
        misfit,
        "\n".join(texts) if keep_text and texts else None,
    )


def _label_for(candidate: _Candidate, workload_type: str) -> str | None:
    if workload_type == "tool_calling":
        return candidate.tool
    if workload_type == "classification":
        return candidate.label
    return None


def curate(
    rows: Iterable[tuple[int, str | bytes]],
    *,
    workload_type: str = "auto",
    limit: int | None = None,
    max_tool_properties: int = 8,
    parse_arguments: bool = True,
    near_duplicate_threshold: float | None = None,
) -> Curation:
    """Validate, type and deduplicate a newest-first stream of ``(row_id, record_json)``.

    With ``limit``, reading stops as soon as ``limit`` records survive every filter under the workload type the
    evidence read so far points to; the final type is decided on all records read. Rejections are counted by
    reason; duplicates keep their first (newest) copy.
    """
    scan = scan_records(
        rows,
        workload_type=workload_type,
        limit=limit,
        max_tool_properties=max_tool_properties,
        parse_arguments=parse_arguments,
        keep_text=near_duplicate_threshold is not None,
    )
    return finish_curation(
        scan, workload_type=workload_type, limit=limit, near_duplicate_threshold=near_duplicate_threshold
    )


def scan_records(
    rows: Iterable[tuple[int, str | bytes]],
    *,
    workload_type: str = "auto",
    limit: int | None = None,
    max_tool_properties: int = 8,
    parse_arguments: bool = True,
    keep_text: bool = False,
) -> Scan:
    """Validate each record and keep compact facts about the valid ones (stopping early under ``limit``)."""
    evidence = WorkloadEvidence()
    rejected: Counter[str] = Counter()
    candidates: list[_Candidate] = []
    row_ids: list[int] = []
    # Per-type running count of records that would be selected, for the early stop under a limit.
    running = {w: 0 for w in WORKLOAD_TYPES}
    running_dedup = {w: ExactDeduplicator() for w in WORKLOAD_TYPES}
    total = 0
    for row_id, data in rows:
        position = total
        total += 1
        row_ids.append(row_id)
        try:
            record = orjson.loads(data)
        except orjson.JSONDecodeError:
            rejected[UNPARSEABLE] += 1
            continue
        checked = validate_record(
            record, max_tool_properties=max_tool_properties, parse_arguments=parse_arguments
        )
        if isinstance(checked, Rejected):
            rejected[checked.reason] += 1
            continue
        candidate = _facts(position, checked, keep_text)
        evidence.add(candidate.tool is not None, candidate.label is not None)
        candidates.append(candidate)
        if limit is not None:
            for i, w in enumerate(WORKLOAD_TYPES):
                if candidate.misfit[i] is None and not running_dedup[w].is_duplicate(candidate.key):
                    running[w] += 1
            if running[decide_workload_type(evidence, workload_type)] >= limit:
                break
    return Scan(total=total, row_ids=row_ids, candidates=candidates, rejected=rejected, evidence=evidence)


def finish_curation(
    scan: Scan,
    *,
    workload_type: str = "auto",
    limit: int | None = None,
    near_duplicate_threshold: float | None = None,
) -> Curation:
    """Decide the workload type on the evidence, apply its filter, deduplicate and cap at ``limit``."""
    evidence, candidates, rejected = scan.evidence, scan.candidates, Counter(scan.rejected)
    decided = decide_workload_type(evidence, workload_type)
    exact = ExactDeduplicator()
    near = MinHashDeduplicator(near_duplicate_threshold) if near_duplicate_threshold is not None else None
    result = Curation(
        workload_type=decided,
        evidence=evidence,
        total=scan.total,
        positions=[],
        labels=[],
        keys=[],
        row_ids=scan.row_ids,
        rejected=rejected,
        valid_format=len(candidates),
    )
    type_index = WORKLOAD_TYPES.index(decided)
    for candidate in candidates:
        reason = candidate.misfit[type_index]
        if reason is not None:
            rejected[reason] += 1
            continue
        result.after_quality_filter += 1
        if exact.is_duplicate(candidate.key):
            result.deduplicated += 1
            continue
        if near is not None and candidate.text is not None and near.is_duplicate(candidate.text):
            result.near_duplicates += 1
            continue
        if limit is not None and len(result.positions) >= limit:
            result.beyond_limit += 1
            continue
        result.positions.append(candidate.position)
        result.labels.append(_label_for(candidate, decided))
        result.keys.append(candidate.key)
    return result
