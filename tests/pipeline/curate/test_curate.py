"""The curation pass: counts by reason, newest copy kept, limit stops reading early, minority types rejected."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from factories import chat_record, tool_call
from flywheel.pipeline.curate import _validate as v
from flywheel.pipeline.curate import curate


def _rows(records: list[Any]) -> list[tuple[int, str]]:
    return [(i + 1, r if isinstance(r, str) else json.dumps(r)) for i, r in enumerate(records)]


def test_counts_add_up_and_minority_tool_call_is_rejected_not_flipping_the_type() -> None:
    records: list[Any] = [chat_record(f"headline {i}", f"[[[c{i % 3}]]]") for i in range(20)]
    records += [chat_record("headline 1", "[[[c1]]]"), "{broken", {"request": {}}]
    records.append(chat_record("weather?", None, tool_calls=[tool_call("get_weather", {})], tools=[]))
    result = curate(_rows(records))
    assert result.workload_type == "classification"
    assert result.rejected == {v.UNPARSEABLE: 1, v.NO_MESSAGES: 1, v.HAS_TOOL_CALL: 1}
    assert result.deduplicated == 1
    assert len(result.positions) == 20
    assert result.total == sum(result.rejected.values()) + result.deduplicated + len(result.positions)
    assert set(result.labels) == {"c0", "c1", "c2"}


def test_the_newest_copy_of_a_duplicate_is_kept() -> None:
    rows = _rows([chat_record("Same  question", "new"), chat_record("same question", "old")])
    result = curate(rows, workload_type="generic")
    assert result.positions == [0]
    assert result.deduplicated == 1


def test_limit_stops_reading_once_enough_records_survive() -> None:
    consumed = 0

    def stream() -> Iterator[tuple[int, str]]:
        nonlocal consumed
        for i in range(1000):
            consumed += 1
            yield i, json.dumps(chat_record(f"q{i // 2}", "[[[a]]]"))  # every record has one duplicate

    result = curate(stream(), limit=10)
    assert len(result.positions) == 10
    assert consumed == 19  # 10 unique records need 19 rows when every second one is a duplicate
    assert result.total == 19


def test_tool_calling_labels_are_first_function_names() -> None:
    tools = [
        {"type": "function", "function": {"name": "a", "parameters": {"type": "object", "properties": {}}}}
    ]
    records = [
        chat_record(
            f"q{i}",
            None,
            tool_calls=[tool_call("a" if i % 2 else "b", {"x": i}), tool_call("c", {})],
            tools=tools,
        )
        for i in range(6)
    ]
    records.append(chat_record("plain", "just text"))
    result = curate(_rows(records))
    assert result.workload_type == "tool_calling"
    assert result.labels == ["b", "a", "b", "a", "b", "a"]
    assert result.rejected == {v.NO_TOOL_CALL: 1}
