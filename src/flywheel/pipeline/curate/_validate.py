"""Per-record validation: pure ``record -> record | Rejected`` checks with a reason for every rejection.

The reference's rules (spec §7.4) plus: roles must be known, content must be a string or a list of content parts,
tool-call arguments must parse as JSON when ``parse_function_arguments`` is on, and tool schemas with more than
``max_tool_properties`` properties are flagged.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import orjson

from flywheel.pipeline.records import RecordView, content_text, with_choices

Record = dict[str, Any]

VALID_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})

# Rejection reasons are stable short strings: they are the keys of the manifest's ``rejected`` counts.
NOT_AN_OBJECT = "record is not a JSON object"
UNPARSEABLE = "record is not valid JSON"
MISSING_REQUEST = "missing or non-object request"
NO_MESSAGES = "request.messages missing or empty"
BAD_MESSAGE = "request message is not an object"
BAD_ROLE = "request message has an invalid role"
BAD_CONTENT = "request message content is neither a string nor a list of content parts"
BAD_TOOLS = "request.tools is not a list of function tools"
TOO_MANY_PROPERTIES = "tool schema has more properties than curation.max_tool_properties"
MISSING_RESPONSE = "missing or non-object response"
NO_CHOICES = "response.choices missing or empty"
BAD_CHOICE = "response choice without a message object"
BAD_RESPONSE_CONTENT = "teacher message content is neither a string nor a list of content parts"
BAD_TOOL_CALL = "malformed tool call in teacher response"
BAD_ARGUMENTS = "tool-call arguments are not valid JSON"
# Workload-type filters (applied once the workload type is known).
NO_TOOL_CALL = "no tool call in teacher response (tool-calling workload)"
NOT_FUNCTION_CALL = "tool call type is not 'function' (tool-calling workload)"
NO_TOOLS = "request has no tools (tool-calling workload)"
HAS_TOOL_CALL = "teacher response has tool calls (classification workload)"
NO_LABEL = "no [[label]] in teacher response (classification workload)"

_LABEL = re.compile(r"\[\[+\s*(.*?)\s*\]\]+", re.DOTALL)


class Rejected(NamedTuple):
    """A record that failed a check, and why."""

    reason: str


def _content_ok(content: Any) -> bool:
    if isinstance(content, str):
        return True
    if isinstance(content, list):
        return all(isinstance(part, dict) and isinstance(part.get("type"), str) for part in content)
    return False


def _check_tools(tools: Any, max_tool_properties: int) -> str | None:
    if type(tools) is not list:
        return BAD_TOOLS
    for tool in tools:
        function = tool.get("function") if type(tool) is dict else None
        if type(function) is not dict or type(function.get("name")) is not str:
            return BAD_TOOLS
        parameters = function.get("parameters")
        if type(parameters) is dict:
            properties = parameters.get("properties")
            if type(properties) is dict and len(properties) > max_tool_properties:
                return TOO_MANY_PROPERTIES
    return None


def _parse_tool_calls(tool_calls: list[Any], parse_arguments: bool) -> list[Any] | str:
    """Check tool calls; return them with string arguments parsed (a new list when anything changed)."""
    out = tool_calls
    for i, call in enumerate(tool_calls):
        if not isinstance(call, dict):
            return BAD_TOOL_CALL
        function = call.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            return BAD_TOOL_CALL
        arguments = function.get("arguments")
        if parse_arguments and isinstance(arguments, str):
            try:
                parsed = orjson.loads(arguments)
            except orjson.JSONDecodeError:
                return BAD_ARGUMENTS
            if out is tool_calls:
                out = list(tool_calls)
            out[i] = {**call, "function": {**function, "arguments": parsed}}
    return out


def validate_record(
    record: Any, *, max_tool_properties: int = 8, parse_arguments: bool = True
) -> Record | Rejected:
    """Check one logged record's OpenAI chat format.

    Returns the record (a shallow copy with string tool-call arguments of the teacher response parsed into objects,
    when ``parse_arguments`` is on and there are any) or a :class:`Rejected` carrying the reason.
    """
    if not isinstance(record, dict):
        return Rejected(NOT_AN_OBJECT)
    request = record.get("request")
    if not isinstance(request, dict):
        return Rejected(MISSING_REQUEST)
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        return Rejected(NO_MESSAGES)
    for message in messages:
        if type(message) is not dict:
            return Rejected(BAD_MESSAGE)
        role = message.get("role")
        if role not in VALID_ROLES:
            return Rejected(BAD_ROLE)
        content = message.get("content")
        if type(content) is str:  # the common case, checked first because this loop runs for every message
            continue
        # An assistant turn that only calls tools (or a legacy function turn) may have no content.
        if content is None and role in ("assistant", "function", "tool"):
            continue
        if not _content_ok(content):
            return Rejected(BAD_CONTENT)
    if "tools" in request and request["tools"] is not None:
        problem = _check_tools(request["tools"], max_tool_properties)
        if problem:
            return Rejected(problem)
    response = record.get("response")
    if not isinstance(response, dict):
        return Rejected(MISSING_RESPONSE)
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices:
        return Rejected(NO_CHOICES)
    new_choices = choices
    for i, choice in enumerate(choices):
        if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
            return Rejected(BAD_CHOICE)
        message = choice["message"]
        content = message.get("content")
        if content is not None and not _content_ok(content):
            return Rejected(BAD_RESPONSE_CONTENT)
        tool_calls = message.get("tool_calls")
        if tool_calls is None:
            continue
        if not isinstance(tool_calls, list):
            return Rejected(BAD_TOOL_CALL)
        checked = _parse_tool_calls(tool_calls, parse_arguments)
        if isinstance(checked, str):
            return Rejected(checked)
        if checked is not tool_calls:
            if new_choices is choices:
                new_choices = list(choices)
            new_choices[i] = {**choice, "message": {**message, "tool_calls": checked}}
    if new_choices is choices:
        return record
    return with_choices(record, new_choices)


def parse_arguments(record: Record) -> Record:
    """A validated record with the string tool-call arguments of its teacher response parsed, as
    :func:`validate_record` does with ``parse_arguments=True`` (without re-running the other checks)."""
    # Read directly, like validate_record: this is the validator's own re-check of the shape it accepted, on the
    # hot path of every dataset write (a RecordView here would cost more than the lookup).
    choices = record["response"]["choices"]
    new_choices = choices
    for i, choice in enumerate(choices):
        tool_calls = choice["message"].get("tool_calls")
        if not tool_calls:
            continue
        checked = _parse_tool_calls(tool_calls, True)
        if isinstance(checked, str):
            raise ValueError(f"record failed validation on re-read: {checked}")
        if checked is not tool_calls:
            if new_choices is choices:
                new_choices = list(choices)
            new_choices[i] = {**choice, "message": {**choice["message"], "tool_calls": checked}}
    if new_choices is choices:
        return record
    return with_choices(record, new_choices)


def classification_label(text: Any) -> str | None:
    """The class in a teacher answer: text inside ``[[[…]]]`` or ``[[…]]``, stripped and lower-cased (spec §15)."""
    match = _LABEL.search(content_text(text))
    if match is None:
        return None
    label = match.group(1).strip().lower()
    return label or None


def record_label(view: RecordView) -> str | None:
    """The label for evidence: tool name if the teacher called a tool, else the bracketed class, else None."""
    name = view.teacher_tool_name
    if name is not None:
        return name
    return classification_label(view.teacher_content)


def check_workload_fit(view: RecordView, workload_type: str) -> str | None:
    """Reason why a format-valid record does not fit a workload type, or None if it does."""
    calls = view.teacher_tool_calls
    if workload_type == "tool_calling":
        if not calls:
            return NO_TOOL_CALL
        for call in calls:  # a loop, not any(…): this runs for every tool-calling record curation scans
            if call.get("type", "function") != "function":
                return NOT_FUNCTION_CALL
        if not view.tools:
            return NO_TOOLS
        return None
    if workload_type == "classification":
        if calls:
            return HAS_TOOL_CALL
        if classification_label(view.teacher_content) is None:
            return NO_LABEL
    return None


def user_texts(view: RecordView) -> list[str]:
    """Texts of the user messages of the request, in order (empty ones skipped)."""
    out = []
    for message in view.messages:
        if message.get("role") == "user":
            content = message.get("content")
            text = content if type(content) is str else content_text(content)  # the common case inline
            if text:
                out.append(text)
    return out
