"""Workload type by majority evidence, so that a few stray records never flip the type of a whole workload."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from flywheel.errors import DataError

#: Share of format-valid records that must carry the evidence for ``auto`` to pick a type.
MAJORITY = 0.5


class EvidenceSummary(TypedDict):
    """:class:`WorkloadEvidence` for the manifest: its counts, the two shares and the majority they are held to."""

    records_examined: int
    with_tool_calls: int
    with_label: int
    tool_call_share: float
    label_share: float
    majority_threshold: float


@dataclass
class WorkloadEvidence:
    """What the teacher's answers show, counted over format-valid records."""

    records_examined: int = 0
    with_tool_calls: int = 0
    with_label: int = 0

    def add(self, has_tool_calls: bool, has_label: bool) -> None:
        """Count one format-valid record."""
        self.records_examined += 1
        self.with_tool_calls += has_tool_calls
        self.with_label += has_label and not has_tool_calls

    @property
    def tool_call_share(self) -> float:
        """Share of records whose teacher answer calls a tool."""
        return self.with_tool_calls / self.records_examined if self.records_examined else 0.0

    @property
    def label_share(self) -> float:
        """Share of records whose teacher answer carries a ``[[label]]`` (and no tool call)."""
        return self.with_label / self.records_examined if self.records_examined else 0.0

    def as_dict(self) -> EvidenceSummary:
        """Evidence for the manifest."""
        return {
            "records_examined": self.records_examined,
            "with_tool_calls": self.with_tool_calls,
            "with_label": self.with_label,
            "tool_call_share": round(self.tool_call_share, 6),
            "label_share": round(self.label_share, 6),
            "majority_threshold": MAJORITY,
        }


def decide_workload_type(evidence: WorkloadEvidence, requested: str = "auto") -> str:
    """``classification``, ``tool_calling`` or ``generic``.

    ``auto``: tool_calling when more than half of the records call a tool, else classification when more than half
    carry a ``[[label]]``, else generic. An explicit ``tool_calling`` on data without any tool call is an error
    (spec §15); ``generic`` and ``classification`` are taken as asked.
    """
    if requested == "tool_calling":
        if evidence.records_examined and evidence.with_tool_calls == 0:
            raise DataError(
                "evaluation_config.workload_type is tool_calling but none of the "
                f"{evidence.records_examined} valid records has a tool call in the teacher response. "
                "Set workload_type to auto, classification or generic, or check the workload_id."
            )
        return "tool_calling"
    if requested in ("classification", "generic"):
        return requested
    if requested != "auto":
        raise DataError(
            f"Unknown workload_type {requested!r}; use auto, classification, tool_calling or generic."
        )
    if evidence.tool_call_share > MAJORITY:
        return "tool_calling"
    if evidence.label_share > MAJORITY:
        return "classification"
    return "generic"
