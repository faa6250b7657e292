"""Reading the teacher's answer out of a log record and a candidate's answer out of a prediction.

Both end up as an :class:`Answer`: assistant text plus OpenAI-shape tool calls. Nothing here raises on odd input; a
missing answer is an empty :class:`Answer`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flywheel.backends._types import ChatRequest, Generation, Message
from flywheel.pipeline.records import RecordView, response_message


@dataclass(frozen=True)
class Answer:
    """An assistant answer: text and/or tool calls (``[{"function": {"name", "arguments"}}]``, arguments as logged)."""

    content: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """``{"content": …, "tool_calls": [...]}``."""
        return {"content": self.content, "tool_calls": self.tool_calls}


def _as_answer(message: Any) -> Answer:
    if not isinstance(message, Mapping):
        return Answer()
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        # multimodal / list content: keep the text parts
        if isinstance(content, list):
            content = "".join(
                str(part.get("text", "")) for part in content if isinstance(part, Mapping) and "text" in part
            )
        else:
            content = str(content)
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        calls = []
    return Answer(content=content, tool_calls=[c for c in calls if isinstance(c, Mapping)])  # type: ignore[misc]


def answer_from_response(response: Any) -> Answer:
    """The first choice's message of an OpenAI ChatCompletion (dict); an empty answer if there is none."""
    return _as_answer(response_message(response))


def teacher_answer(record: Mapping[str, Any]) -> Answer:
    """The teacher's logged answer: ``record["response"]["choices"][0]["message"]``."""
    return _as_answer(RecordView(record).teacher_message)


def prompt_messages(record: Mapping[str, Any]) -> list[Message]:
    """The logged request's messages (a new list; empty if absent)."""
    return list(RecordView(record).messages)


def record_id(record: Mapping[str, Any], index: int) -> str:
    """A stable reference to an eval record: its ``record_id``/``id`` field, else a hash of its request."""
    own = RecordView(record).record_id
    if own is not None:
        return own
    request = record.get("request")  # hashed as logged, whatever its shape
    if request is None:
        return f"#{index}"
    digest = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()
    return f"req:{digest[:16]}"


def teacher_usage(record: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """``(prompt_tokens, completion_tokens)`` the teacher's response logged, or ``None`` where missing."""
    view = RecordView(record)
    return view.prompt_tokens, view.completion_tokens


def answer_from_generation(generation: Generation) -> Answer:
    """A candidate's answer from a backend :class:`Generation` (empty when it failed)."""
    if generation.error:
        return Answer()
    return Answer(content=generation.content, tool_calls=list(generation.tool_calls or []))


def prediction_to_generation(prediction: Mapping[str, Any]) -> Generation:
    """A prediction line (``{"response": ChatCompletion}`` or ``{"content", "tool_calls"}``) as a :class:`Generation`.

    Usage, latency (``latency_s``) and an ``error`` field are read when present.
    """
    response = prediction.get("response")
    if isinstance(response, Mapping):
        answer = answer_from_response(response)
        usage = response.get("usage") if isinstance(response.get("usage"), Mapping) else {}
    else:
        answer = _as_answer(prediction)
        usage = prediction.get("usage") if isinstance(prediction.get("usage"), Mapping) else {}
    assert isinstance(usage, Mapping)
    latency = prediction.get("latency_s")
    error = prediction.get("error")
    return Generation(
        content=answer.content,
        tool_calls=answer.tool_calls or None,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        latency_s=float(latency) if isinstance(latency, int | float) else 0.0,
        error=str(error) if error else None,
    )


def detect_workload_type(records: list[Mapping[str, Any]]) -> str:
    """``tool_calling`` if any teacher answer calls a tool, ``classification`` if every non-empty teacher answer
    carries a ``[[label]]``, else ``generic``."""
    from flywheel.pipeline.evaluate._classification import bracket_label

    answers = [teacher_answer(r) for r in records]
    if any(a.tool_calls for a in answers):
        return "tool_calling"
    texts = [a.content for a in answers if a.content and a.content.strip()]
    if texts and all(bracket_label(t) is not None for t in texts):
        return "classification"
    return "generic"


def candidate_requests(
    eval_records: list[Mapping[str, Any]] | tuple[Mapping[str, Any], ...],
    max_tokens: int | None = None,
) -> list[ChatRequest]:
    """The requests a candidate answers: each record's logged messages and tools, tagged with its record id.

    This is how the base, ICL and customized evaluations query a candidate (the ICL records carry the few-shot
    system message already), so all three are asked the same way.
    """
    out = []
    for i, record in enumerate(eval_records):
        tools = RecordView(record).tools or None
        out.append(
            ChatRequest(
                messages=prompt_messages(record),
                tools=tools,
                max_tokens=max_tokens,
                request_id=record_id(record, i),
            )
        )
    return out
