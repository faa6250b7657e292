"""Dataset record shapes (spec §7.7): full records for evaluation, ``{"messages", "tools"}`` for training."""

from __future__ import annotations

from typing import Any

import orjson

Record = dict[str, Any]


def to_eval_record(record: Record) -> Record:
    """The validated log record as it is evaluated: every field kept; tool-call arguments inside the request history
    serialised to JSON strings (as OpenAI expects there), those of the teacher answer kept as objects."""
    messages = record["request"]["messages"]
    if not any(isinstance(m, dict) and m.get("tool_calls") for m in messages):
        return record
    return {**record, "request": {**record["request"], "messages": _stringify_history(messages)}}


def _stringify_history(messages: list[Any]) -> list[Any]:
    """Request messages with object tool-call arguments serialised to JSON strings."""
    new_messages = []
    for message in messages:
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        if calls:
            message = {
                **message,
                "tool_calls": [
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
                ],
            }
        new_messages.append(message)
    return new_messages


def to_training_example(record: Record, workload_type: str) -> Record:
    """``{"messages": request messages + [teacher answer], "tools"?}`` for fine-tuning.

    Assistant turns with ``content: null`` get ``""`` and their tool-call arguments are JSON strings (as in the eval
    set); the answer keeps its parsed arguments. For tool-calling the answer's content is ``""`` and the request's
    tools are included.
    """
    messages = [
        {**m, "content": ""} if m.get("role") == "assistant" and m.get("content") is None else m
        for m in _stringify_history(record["request"]["messages"])
    ]
    teacher = record["response"]["choices"][0]["message"]
    answer: Record = {"role": teacher.get("role") or "assistant", "content": teacher.get("content") or ""}
    if teacher.get("tool_calls"):
        answer["tool_calls"] = teacher["tool_calls"]
    example: Record = {"messages": [*messages, answer]}
    if workload_type == "tool_calling":
        answer["content"] = ""
        example["tools"] = record["request"].get("tools") or []
    return example
