"""Tool calling for local models: prompt text for templates without tool support, and parsing calls back.

Pure Python (no torch), so the parser is unit-tested without a model.

Formats recognised in a model's answer, first match wins:

1. JSON in ``<tool_call>…</tool_call>`` tags (Hermes/Qwen/SmolLM style; also what our fallback prompt asks for).
   An unterminated last tag (the answer hit ``max_tokens``) is parsed too.
2. Template-specific markers: ``[TOOL_CALLS] [...]`` (Mistral), ``<|python_tag|>{...}`` (Llama 3.1 JSON),
   ``<function=name>{...}</function>`` (Llama 3.1 custom format).
3. Bare JSON: the whole answer (optionally in a ``json`` code fence) is one call object or a list of them.
   Accepted only when it names an offered tool, so that a JSON *answer* is not mistaken for a call.
"""

from __future__ import annotations

import json
import re
from typing import Any

_TAG = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_FUNCTION_TAG = re.compile(r"<function=([\w.\-]+)>\s*(.*?)\s*</function>", re.DOTALL)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)

_NAME_KEYS = ("name", "function_name", "tool_name", "tool")
_ARG_KEYS = ("arguments", "parameters", "args", "input")


def tool_names(tools: list[dict[str, Any]] | None) -> set[str]:
    """Names of the functions in OpenAI tool definitions."""
    names: set[str] = set()
    for tool in tools or []:
        function = tool.get("function", tool)
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.add(function["name"])
    return names


def _as_call(obj: Any) -> tuple[str, Any] | None:
    """(name, arguments) if ``obj`` looks like a function call in any of the usual key spellings."""
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("function"), dict):  # OpenAI shaped: {"type": "function", "function": {...}}
        return _as_call(obj["function"])
    name = next((obj[k] for k in _NAME_KEYS if isinstance(obj.get(k), str)), None)
    if not name:
        return None
    arguments: Any = next((obj[k] for k in _ARG_KEYS if k in obj), {})
    return name, arguments


def _decoded(arguments: Any) -> Any:
    """``arguments`` parsed if it is a JSON-encoded string, else unchanged."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except json.JSONDecodeError:
            return arguments
    return arguments


def _openai_call(index: int, name: str, arguments: Any) -> dict[str, Any]:
    # OpenAI sends arguments as a JSON string; a model may emit an object or an already-encoded string.
    arguments = _decoded(arguments)
    encoded = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return {"id": f"call_{index}", "type": "function", "function": {"name": name, "arguments": encoded}}


def _loads_lenient(text: str) -> Any:
    """JSON value at the start of ``text`` (trailing junk ignored), or None."""
    text = text.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        value, _ = json.JSONDecoder().raw_decode(text)
        return value
    except json.JSONDecodeError:
        return None


def _calls_from_value(value: Any) -> list[tuple[str, Any]]:
    items = value if isinstance(value, list) else [value]
    calls = [_as_call(item) for item in items]
    return [c for c in calls if c is not None] if all(c is not None for c in calls) else []


def parse_tool_calls(
    text: str, tools: list[dict[str, Any]] | None = None
) -> tuple[str | None, list[dict[str, Any]] | None]:
    """Split a model's raw answer into (content, OpenAI ``tool_calls``).

    ``content`` is the text outside any tool-call markup (``None`` if nothing is left); ``tool_calls`` is ``None``
    when the answer holds no call. Unparseable markup is left in ``content`` rather than raising.
    """
    names = tool_names(tools)
    found: list[tuple[str, Any]] = []
    rest = text

    if "<tool_call>" in text:
        kept: list[str] = []
        last = 0
        for match in _TAG.finditer(text):
            calls = _calls_from_value(_loads_lenient(match.group(1)))
            if calls:
                found.extend(calls)
                kept.append(text[last : match.start()])
                last = match.end()
        kept.append(text[last:])
        rest = "".join(kept)
    elif "<function=" in text:
        kept = []
        last = 0
        for match in _FUNCTION_TAG.finditer(text):
            arguments = _loads_lenient(match.group(2))
            found.append((match.group(1), arguments if arguments is not None else {}))
            kept.append(text[last : match.start()])
            last = match.end()
        kept.append(text[last:])
        rest = "".join(kept)
    else:
        for marker in ("[TOOL_CALLS]", "<|python_tag|>"):
            if marker in text:
                before, _, after = text.partition(marker)
                calls = _calls_from_value(_loads_lenient(after))
                if calls:
                    found.extend(calls)
                    rest = before
                break

    if not found:
        stripped = text.strip()
        fence = _FENCE.match(stripped)
        body = fence.group(1) if fence else stripped
        if body.startswith(("{", "[")):
            try:
                value = json.loads(body)
            except json.JSONDecodeError:
                value = None
            calls = _calls_from_value(value) if value is not None else []
            # A bare JSON object is a call only if it names an offered tool; otherwise it is a JSON answer.
            if calls and names and all(name in names for name, _ in calls):
                found = calls
                rest = ""

    if not found:
        return (text if text.strip() else None), None
    content = rest.strip() or None
    return content, [_openai_call(i, name, args) for i, (name, args) in enumerate(found)]


def tools_system_prompt(tools: list[dict[str, Any]]) -> str:
    """Instructions that teach a model without a tool-aware chat template to call tools in ``<tool_call>`` tags."""
    listing = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools)
    return (
        "You are a function calling AI model. You are provided with function signatures within <tools></tools> "
        "XML tags. You may call one or more functions to assist with the user query. Don't make assumptions about "
        "what values to plug into functions.\n"
        f"<tools>\n{listing}\n</tools>\n"
        "For each function call return a JSON object with the function name and arguments within "
        "<tool_call></tool_call> XML tags:\n"
        '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
    )


def tool_calls_as_text(tool_calls: list[dict[str, Any]]) -> str:
    """Render an assistant's OpenAI ``tool_calls`` in the ``<tool_call>`` format the fallback prompt asks for."""
    parts = []
    for call in tool_calls:
        function = call.get("function", call)
        arguments = _decoded(function.get("arguments", {}))
        payload = json.dumps({"name": function.get("name"), "arguments": arguments}, ensure_ascii=False)
        parts.append(f"<tool_call>\n{payload}\n</tool_call>")
    return "\n".join(parts)
