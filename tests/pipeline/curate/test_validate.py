"""Validation: one reason per rejected record, the reference's rules plus roles, content and argument parsing."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from factories import chat_record, tool_call
from flywheel.pipeline.curate import (
    Rejected,
    check_workload_fit,
    classification_label,
    record_label,
    user_texts,
    validate_record,
)
from flywheel.pipeline.curate import _validate as v
from flywheel.pipeline.records import RecordView


def _tool(n_props: int, name: str = "f") -> dict[str, Any]:
    props = {f"p{i}": {"type": "string"} for i in range(n_props)}
    return {
        "type": "function",
        "function": {"name": name, "parameters": {"type": "object", "properties": props}},
    }


def _broken(mutate: Any) -> dict[str, Any]:
    record = chat_record()
    mutate(record)
    return record


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ("not a dict", v.NOT_AN_OBJECT),
        (_broken(lambda r: r.pop("request")), v.MISSING_REQUEST),
        (_broken(lambda r: r.update(request=[1])), v.MISSING_REQUEST),
        (_broken(lambda r: r["request"].update(messages=[])), v.NO_MESSAGES),
        (_broken(lambda r: r["request"].update(messages="hi")), v.NO_MESSAGES),
        (_broken(lambda r: r["request"]["messages"].append("hi")), v.BAD_MESSAGE),
        (_broken(lambda r: r["request"]["messages"][1].update(role="robot")), v.BAD_ROLE),
        (_broken(lambda r: r["request"]["messages"][1].update(content=42)), v.BAD_CONTENT),
        (_broken(lambda r: r["request"]["messages"][1].update(content=None)), v.BAD_CONTENT),
        (_broken(lambda r: r["request"]["messages"][1].update(content=[{"text": "x"}])), v.BAD_CONTENT),
        (_broken(lambda r: r["request"].update(tools="f")), v.BAD_TOOLS),
        (_broken(lambda r: r.pop("response")), v.MISSING_RESPONSE),
        (_broken(lambda r: r["response"].update(choices=[])), v.NO_CHOICES),
        (_broken(lambda r: r["response"]["choices"].append({"index": 1})), v.BAD_CHOICE),
        (_broken(lambda r: r["response"]["choices"][0]["message"].update(content=7)), v.BAD_RESPONSE_CONTENT),
        (_broken(lambda r: r["response"]["choices"][0]["message"].update(tool_calls="f()")), v.BAD_TOOL_CALL),
        (
            _broken(lambda r: r["response"]["choices"][0]["message"].update(tool_calls=["f()"])),
            v.BAD_TOOL_CALL,
        ),
    ],
)
def test_invalid_records_are_rejected_with_their_reason(record: Any, reason: str) -> None:
    assert validate_record(record) == Rejected(reason)


def test_valid_records_pass_including_multimodal_and_tool_only_assistant_turns() -> None:
    record = chat_record()
    record["request"]["messages"] += [
        {"role": "assistant", "content": None, "tool_calls": [tool_call("f", {})]},
        {"role": "tool", "content": "42", "tool_call_id": "call_1"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "and now?"}, {"type": "image_url", "image_url": {}}],
        },
    ]
    assert validate_record(record) is record


def test_tool_schemas_above_the_property_limit_are_flagged_and_the_limit_is_configurable() -> None:
    ok = chat_record(tools=[_tool(8)])
    too_many = chat_record(tools=[_tool(3), _tool(9, "g")])
    assert not isinstance(validate_record(ok), Rejected)
    assert validate_record(too_many) == Rejected(v.TOO_MANY_PROPERTIES)
    assert not isinstance(validate_record(too_many, max_tool_properties=9), Rejected)


def test_string_arguments_are_parsed_without_touching_the_input() -> None:
    record = chat_record(answer=None, tool_calls=[tool_call("f", {"a": 1}), tool_call("g", {"b": [1, 2]})])
    before = copy.deepcopy(record)
    out = validate_record(record)
    assert isinstance(out, dict)
    calls = out["response"]["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["arguments"] for c in calls] == [{"a": 1}, {"b": [1, 2]}]
    assert record == before


@pytest.mark.parametrize("arguments", ["invalid json {", "", "   "])
def test_unparseable_arguments_reject_the_record_only_when_parsing_is_on(arguments: str) -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
    record = chat_record(answer=None, tool_calls=[call])
    assert validate_record(record) == Rejected(v.BAD_ARGUMENTS)
    kept = validate_record(record, parse_arguments=False)
    assert isinstance(kept, dict)
    assert kept["response"]["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == arguments


@pytest.mark.parametrize(
    ("content", "label"),
    [
        ("[[[Business ]]]", "business"),
        ("The answer is [[ Tech ]].", "tech"),
        ("[[[sports]]] and later [[[tech]]]", "sports"),
        ("no brackets", None),
        ("[[[   ]]]", None),
        (None, None),
        ([{"type": "text", "text": "[[[Politics]]]"}], "politics"),
    ],
)
def test_classification_label_is_bracket_text_stripped_and_lower_cased(
    content: Any, label: str | None
) -> None:
    assert classification_label(content) == label


def test_workload_fit_reasons() -> None:
    tools = [_tool(1)]
    plain = RecordView(chat_record(answer="[[[a]]]"))
    unlabelled = RecordView(chat_record(answer="just text"))
    called = RecordView(chat_record(answer=None, tool_calls=[tool_call("f", {})], tools=tools))
    called_without_tools = RecordView(chat_record(answer=None, tool_calls=[tool_call("f", {})]))
    not_function = RecordView(
        chat_record(answer=None, tool_calls=[{**tool_call("f", {}), "type": "code"}], tools=tools)
    )
    assert check_workload_fit(plain, "classification") is None
    assert check_workload_fit(unlabelled, "classification") == v.NO_LABEL
    assert check_workload_fit(called, "classification") == v.HAS_TOOL_CALL
    assert check_workload_fit(plain, "tool_calling") == v.NO_TOOL_CALL
    assert check_workload_fit(called, "tool_calling") is None
    assert check_workload_fit(called_without_tools, "tool_calling") == v.NO_TOOLS
    assert check_workload_fit(not_function, "tool_calling") == v.NOT_FUNCTION_CALL
    assert check_workload_fit(unlabelled, "generic") is None


def test_record_label_is_the_called_tool_else_the_bracketed_class() -> None:
    called = chat_record(answer="[[[a]]]", tool_calls=[tool_call("f", {})], tools=[_tool(1)])
    assert record_label(RecordView(called)) == "f"
    assert record_label(RecordView(chat_record(answer="[[[Sports]]]"))) == "sports"
    assert record_label(RecordView(chat_record(answer="no label"))) is None


def test_user_texts_are_the_non_empty_user_contents_in_order() -> None:
    record = chat_record("first")
    record["request"]["messages"] += [
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image_url"}]},
        {"role": "user", "content": ""},
    ]
    assert user_texts(RecordView(record)) == ["first", "second"]
