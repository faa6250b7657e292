"""The log record every stage reads, behind one read-only typed view.

A record is the blueprint's log schema (checked at ingestion by :mod:`flywheel.pipeline.ingest`)::

    {"timestamp", "workload_id", "client_id",
     "request":  {"model", "messages": [...], "tools": [...]?, ...},        # an OpenAI chat-completions request
     "response": {"model", "choices": [{"message": {"content", "tool_calls"?}}], "usage"?, ...}}   # a ChatCompletion

:class:`RecordView` is the one place that knows where each part sits. It wraps the parsed dict without copying or
validating it, so curation can put one around each of millions of records, and it never raises on odd shapes, so
evaluation can use it on records that were never validated. :func:`with_messages` and :func:`with_choices` are the
matching writers for the transforms that rebuild a record (PII masking, argument parsing, dataset formats).

This module imports nothing heavy (no store, no numpy), so ``flywheel score`` and the evaluator read records through
it too; it sits beside the stages rather than in ``ingest`` because importing that package loads the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard

#: What a missing part reads as. Never mutated: the accessors that return it are typed ``Mapping``.
_EMPTY: Mapping[str, Any] = {}


def _is_mapping(value: Any) -> TypeGuard[Mapping[str, Any]]:
    # ``type(...) is dict`` first: parsed JSON is plain dicts, and the ABC check costs several times more.
    return type(value) is dict or isinstance(value, Mapping)


def response_message(response: Any) -> Mapping[str, Any]:
    """``response["choices"][0]["message"]`` of an OpenAI ChatCompletion (as a dict); empty when there is none."""
    # Subscripting inside ``try`` costs nothing on the well-formed records that curation reads by the million; a
    # malformed level (missing key, empty list, a string or list where an object belongs) raises and reads as empty.
    try:
        choices = response["choices"]
        message = choices[0]["message"]
    except (KeyError, IndexError, TypeError):
        return _EMPTY
    if isinstance(choices, list) and (type(message) is dict or isinstance(message, Mapping)):
        return message
    return _EMPTY


def content_text(content: Any) -> str:
    """The text of a message's ``content``: a string as is, the ``text`` of content parts joined by spaces, else
    ``""`` (no content, or a shape that carries no text)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def _count(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _name(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class RecordView:
    """A read-only, typed view of one log record (a parsed JSON object).

    Construction keeps a reference and nothing else; each accessor reads the record when asked (the teacher's
    message is looked up once and remembered). A missing or malformed part reads as empty — ``{}``, ``[]`` or
    ``None`` — so the view never raises. Lists and mappings returned are the record's own: do not mutate them.
    """

    __slots__ = ("_data", "_message")

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data
        self._message: Mapping[str, Any] | None = None

    @property
    def data(self) -> Mapping[str, Any]:
        """The record itself."""
        return self._data

    # ------------------------------------------------------------------ identity

    @property
    def workload_id(self) -> str | None:
        """The ``workload_id`` (None when absent or not a string)."""
        value = self._data.get("workload_id")
        return value if isinstance(value, str) else None

    @property
    def client_id(self) -> str | None:
        """The ``client_id`` (None when absent or not a string)."""
        value = self._data.get("client_id")
        return value if isinstance(value, str) else None

    @property
    def record_id(self) -> str | None:
        """The record's own reference: its ``record_id``, ``id`` or ``_id`` field (a string or an integer), as text."""
        for key in ("record_id", "id", "_id"):
            value = self._data.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool):
                return str(value)
        return None

    # ------------------------------------------------------------------ request (the prompt)

    @property
    def request(self) -> Mapping[str, Any]:
        """The logged chat-completions request."""
        request = self._data.get("request")
        return request if _is_mapping(request) else _EMPTY

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The request's messages (the prompt), in order."""
        try:
            messages = self._data["request"]["messages"]
        except (KeyError, TypeError):
            return []
        return messages if isinstance(messages, list) else []

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The tools the request offered (``[]`` when none)."""
        try:  # ``get`` for the tools: most requests offer none, and a raised KeyError is slow
            tools = self._data["request"].get("tools")
        except (KeyError, AttributeError):
            return []
        return tools if isinstance(tools, list) else []

    @property
    def request_model(self) -> str | None:
        """The model the request named."""
        return _name(self.request.get("model"))

    # ------------------------------------------------------------------ response (the teacher's answer)

    @property
    def response(self) -> Mapping[str, Any]:
        """The logged ChatCompletion."""
        response = self._data.get("response")
        return response if _is_mapping(response) else _EMPTY

    @property
    def choices(self) -> list[dict[str, Any]]:
        """The response's choices (the teacher's answer is the first one's message)."""
        try:
            choices = self._data["response"]["choices"]
        except (KeyError, TypeError):
            return []
        return choices if isinstance(choices, list) else []

    @property
    def teacher_message(self) -> Mapping[str, Any]:
        """The teacher's answer: ``response.choices[0].message``."""
        message = self._message
        if message is None:
            message = self._message = response_message(self._data.get("response"))
        return message

    @property
    def teacher_content(self) -> Any:
        """The answer's ``content`` as logged: a string, a list of content parts, or None."""
        return self.teacher_message.get("content")

    @property
    def teacher_tool_calls(self) -> list[dict[str, Any]]:
        """The answer's tool calls (``[]`` when it calls none)."""
        calls = self.teacher_message.get("tool_calls")
        return calls if isinstance(calls, list) else []

    @property
    def teacher_tool_name(self) -> str | None:
        """Name of the first function the teacher called (None when it called none or the call has no name)."""
        calls = self.teacher_message.get("tool_calls")
        if not calls or not isinstance(calls, list):
            return None
        try:
            name = calls[0]["function"]["name"]
        except (KeyError, TypeError):
            return None
        return name if isinstance(name, str) else None

    @property
    def response_model(self) -> str | None:
        """The model the response named."""
        return _name(self.response.get("model"))

    @property
    def model(self) -> str | None:
        """The teacher model: the one the request named, else the one the response named."""
        return self.request_model or self.response_model

    @property
    def usage(self) -> Mapping[str, Any]:
        """The response's ``usage`` (token counts)."""
        usage = self.response.get("usage")
        return usage if _is_mapping(usage) else _EMPTY

    @property
    def prompt_tokens(self) -> int | None:
        """``usage.prompt_tokens`` when logged as a number."""
        return _count(self.usage.get("prompt_tokens"))

    @property
    def completion_tokens(self) -> int | None:
        """``usage.completion_tokens`` when logged as a number."""
        return _count(self.usage.get("completion_tokens"))


def with_messages(record: Mapping[str, Any], messages: list[Any]) -> dict[str, Any]:
    """A shallow copy of ``record`` whose request has ``messages`` instead of its own."""
    return {**record, "request": {**record["request"], "messages": messages}}


def with_choices(record: Mapping[str, Any], choices: list[Any]) -> dict[str, Any]:
    """A shallow copy of ``record`` whose response has ``choices`` instead of its own."""
    return {**record, "response": {**record["response"], "choices": choices}}
