"""Workload type by majority evidence: a small minority never flips it."""

from __future__ import annotations

import pytest

from flywheel.errors import DataError
from flywheel.pipeline.curate import WorkloadEvidence, decide_workload_type


def _evidence(tools: int, labels: int, plain: int) -> WorkloadEvidence:
    ev = WorkloadEvidence()
    for _ in range(tools):
        ev.add(True, True)
    for _ in range(labels):
        ev.add(False, True)
    for _ in range(plain):
        ev.add(False, False)
    return ev


@pytest.mark.parametrize(
    ("tools", "labels", "plain", "expected"),
    [
        (1, 99, 0, "classification"),  # the reference would call this tool_calling
        (10, 85, 5, "classification"),
        (90, 0, 10, "tool_calling"),
        (3, 0, 97, "generic"),
        (40, 40, 20, "generic"),
        (0, 0, 0, "generic"),
    ],
)
def test_auto_follows_the_majority(tools: int, labels: int, plain: int, expected: str) -> None:
    assert decide_workload_type(_evidence(tools, labels, plain), "auto") == expected


def test_evidence_shares_are_reported() -> None:
    d = _evidence(1, 3, 0).as_dict()
    assert (d["records_examined"], d["with_tool_calls"], d["with_label"]) == (4, 1, 3)
    assert d["tool_call_share"] == 0.25 and d["label_share"] == 0.75


def test_explicit_types_win_but_tool_calling_needs_some_tool_calls() -> None:
    assert decide_workload_type(_evidence(90, 0, 10), "classification") == "classification"
    assert decide_workload_type(_evidence(1, 0, 99), "tool_calling") == "tool_calling"
    with pytest.raises(DataError, match="none of the 5 valid records has a tool call"):
        decide_workload_type(_evidence(0, 5, 0), "tool_calling")
