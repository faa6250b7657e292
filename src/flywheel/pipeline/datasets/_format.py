"""Dataset record shapes (spec §7.7): full records for evaluation, ``{"messages", "tools"}`` for training."""

from __future__ import annotations

from typing import Any

import orjson

from flywheel.pipeline.records import RecordView, with_messages

Record = dict[str, Any]


def to_eval_record(record: Record) -> Record:
    """The validated log record as it is evaluated: every field kept; tool-call arguments inside the request history
    serialised to JSON strings (as OpenAI expects there), those of the teacher answer kept as objects."""
    messages = RecordView(record).messages
    for message in messages:
        if isinstance(message, dict) and message.get("tool_calls"):
            return with_messages(record, _stringify_history(messages))
    return record


def _stringify_calls(calls: list[Any]) -> list[Any]:
    """Tool calls with object arguments serialised to JSON strings."""
    return [
        {
            **c,
            "function": {
                **c["function"],
                "arguments": orjson.dumps(c["function"]["arguments"]).decode(),
            },
        }
        if isinstance(c, dict)
        and isinstance(c.get("function"), dict)
        and isinstance(c["function"].get("arguments"), dict)
        else c
        for c in calls
    ]


def _stringify_history(messages: list[Any]) -> list[Any]:
    """Request messages with object tool-call arguments serialised to JSON strings."""
    new_messages = []
    for message in messages:
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        if calls:
            message = {**message, "tool_calls": _stringify_calls(calls)}
        new_messages.append(message)
    return new_messages


def to_training_example(record: Record, workload_type: str) -> Record:
    """``{"messages": request messages + [teacher answer], "tools"?}`` for fine-tuning.

    Assistant turns with ``content: null`` get ``""`` and their tool-call arguments are JSON strings (as in the eval
    set); the answer keeps its parsed arguments. For tool-calling the answer's content is ``""`` and the request's
    tools are included.
    """
    view = RecordView(record)
    messages: list[Any] = []
    for message in view.messages:  # one pass: this runs for every training record
        calls = message.get("tool_calls")
        if calls:
            message = {**message, "tool_calls": _stringify_calls(calls)}
        if message.get("content") is None and message.get("role") == "assistant":
            message = {**message, "content": ""}
        messages.append(message)
    teacher = view.teacher_message
    answer: Record = {"role": teacher.get("role") or "assistant", "content": teacher.get("content") or ""}
    if calls := teacher.get("tool_calls"):
        answer["tool_calls"] = calls
    messages.append(answer)
    example: Record = {"messages": messages}
    if workload_type == "tool_calling":
        answer["content"] = ""
        example["tools"] = view.tools
    return example
