"""Reassembling a streamed chat completion (``chat.completion.chunk`` objects) into one ``chat.completion``.

Pure data handling on plain dicts, so it works for any OpenAI-compatible server. Rules:

- text fields of a delta (``content``, ``refusal``, and provider extras such as ``reasoning_content``) are
  concatenated; other delta fields keep their last non-null value;
- tool calls are merged by their ``index``: ``id``/``type``/``function.name`` keep the first non-empty value (some
  servers repeat them), ``function.arguments`` pieces are concatenated;
- ``finish_reason`` and other choice fields keep their last non-null value; ``logprobs`` lists are concatenated;
- ``usage`` is taken from whichever chunk carries it (the OpenAI API sends it in a last chunk without choices when
  ``stream_options.include_usage`` is set).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Chunk fields that are not copied as they are into the completion.
_CHUNK_SPECIAL = frozenset({"object", "choices", "usage"})
#: Delta fields with their own merge rule.
_DELTA_SPECIAL = frozenset({"role", "tool_calls", "function_call"})
#: Choice fields with their own merge rule.
_CHOICE_SPECIAL = frozenset({"index", "delta", "finish_reason", "logprobs"})


class _ToolCall:
    __slots__ = ("arguments", "extra", "id", "name", "type")

    def __init__(self) -> None:
        self.id: str | None = None
        self.type: str | None = None
        self.name: str | None = None
        self.arguments: list[str] = []
        self.extra: dict[str, Any] = {}

    def add(self, delta: Mapping[str, Any]) -> None:
        self.id = self.id or delta.get("id")
        self.type = self.type or delta.get("type")
        function = delta.get("function") or {}
        self.name = self.name or function.get("name")
        if function.get("arguments"):
            self.arguments.append(function["arguments"])
        for key, value in delta.items():
            if key not in ("index", "id", "type", "function") and value is not None:
                self.extra[key] = value

    def as_dict(self) -> dict[str, Any]:
        call: dict[str, Any] = {
            "id": self.id,
            "type": self.type or "function",
            "function": {"name": self.name, "arguments": "".join(self.arguments)},
        }
        call.update(self.extra)
        return call


class _Choice:
    __slots__ = (
        "extra",
        "finish_reason",
        "function_call",
        "logprobs",
        "message",
        "role",
        "text",
        "tool_calls",
    )

    def __init__(self) -> None:
        self.role: str | None = None
        self.text: dict[str, list[str]] = {}  # content, refusal, reasoning_content, … → pieces
        self.message: dict[str, Any] = {}  # other (non-text) delta fields, last non-null value
        self.tool_calls: dict[int, _ToolCall] = {}
        self.function_call: _ToolCall | None = None  # legacy ``functions`` API
        self.finish_reason: str | None = None
        self.logprobs: dict[str, Any] | None = None
        self.extra: dict[str, Any] = {}

    def add(self, choice: Mapping[str, Any]) -> None:
        delta = choice.get("delta") or {}
        self.role = self.role or delta.get("role")
        for key, value in delta.items():
            if key in _DELTA_SPECIAL or value is None:
                continue
            if isinstance(value, str):
                self.text.setdefault(key, []).append(value)
            else:
                self.message[key] = value
        for position, call in enumerate(delta.get("tool_calls") or []):
            self._tool_call(call, position).add(call)
        if delta.get("function_call"):
            self.function_call = self.function_call or _ToolCall()
            self.function_call.add({"function": delta["function_call"]})
        if choice.get("finish_reason") is not None:
            self.finish_reason = choice["finish_reason"]
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, Mapping):
            merged = self.logprobs if self.logprobs is not None else {}
            for key, value in logprobs.items():
                if isinstance(value, list):
                    merged.setdefault(key, []).extend(value)
                elif value is not None:
                    merged[key] = value
            self.logprobs = merged
        for key, value in choice.items():
            if key not in _CHOICE_SPECIAL and value is not None:
                self.extra[key] = value

    def _tool_call(self, call: Mapping[str, Any], position: int) -> _ToolCall:
        index = call.get("index")
        if not isinstance(index, int):
            # Some servers omit the index: a new id starts a new call, otherwise it continues the latest one.
            if call.get("id") and all(c.id != call["id"] for c in self.tool_calls.values()):
                index = max(self.tool_calls, default=-1) + 1
            else:
                index = max(self.tool_calls, default=position)
        return self.tool_calls.setdefault(index, _ToolCall())

    def as_dict(self, index: int) -> dict[str, Any]:
        message: dict[str, Any] = {"role": self.role or "assistant"}
        pieces = self.text.get("content")
        message["content"] = "".join(pieces) if pieces is not None else None
        for key, parts in self.text.items():
            if key != "content":
                message[key] = "".join(parts)
        message.update(self.message)
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[i].as_dict() for i in sorted(self.tool_calls)]
        if self.function_call is not None:
            message["function_call"] = self.function_call.as_dict()["function"]
        choice: dict[str, Any] = {"index": index, "message": message, "finish_reason": self.finish_reason}
        if self.logprobs is not None:
            choice["logprobs"] = self.logprobs
        choice.update(self.extra)
        return choice


class StreamAccumulator:
    """Collects the chunks of one streamed chat completion; :meth:`completion` builds the full ChatCompletion."""

    def __init__(self) -> None:
        self._head: dict[str, Any] = {}
        self._choices: dict[int, _Choice] = {}
        self._usage: Any = None
        self.chunks = 0

    def add(self, chunk: Mapping[str, Any]) -> None:
        """Merge one chunk (a ``chat.completion.chunk`` as a dict)."""
        self.chunks += 1
        for key, value in chunk.items():
            if key not in _CHUNK_SPECIAL and value is not None:
                self._head[key] = value
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for position, choice in enumerate(chunk.get("choices") or []):
            index = choice.get("index")
            if not isinstance(index, int):
                index = position
            self._choices.setdefault(index, _Choice()).add(choice)

    @property
    def complete(self) -> bool:
        """True once at least one choice was seen and every choice has a finish reason."""
        return bool(self._choices) and all(c.finish_reason is not None for c in self._choices.values())

    def completion(self) -> dict[str, Any]:
        """The ChatCompletion (as a dict) that the chunks so far add up to."""
        result: dict[str, Any] = {"id": self._head.get("id"), "object": "chat.completion"}
        result.update(self._head)
        result["choices"] = [self._choices[i].as_dict(i) for i in sorted(self._choices)]
        if self._usage is not None:
            result["usage"] = self._usage
        return result
