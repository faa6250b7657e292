"""OpenAI messages → token ids through the model's own chat template (inference and training).

Templates differ in what they support. When a template knows nothing about tools (SmolLM2's does not), tools are
described in the system message and earlier assistant tool calls are written in the ``<tool_call>`` format that
:mod:`flywheel.backends.local._tools` parses back, so the model sees one consistent convention.
"""

from __future__ import annotations

import copy
from typing import Any

from flywheel.backends.local._tools import tool_calls_as_text, tools_system_prompt
from flywheel.errors import BackendError

Message = dict[str, Any]


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts; only text parts matter to a text model
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def template_supports_tools(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template renders a ``tools`` argument itself."""
    template = getattr(tokenizer, "chat_template", None) or ""
    if isinstance(template, dict):
        template = " ".join(str(v) for v in template.values())
    return "tools" in template


def normalise_messages(
    tokenizer: Any, messages: list[Message], tools: list[dict[str, Any]] | None
) -> tuple[list[Message], list[dict[str, Any]] | None]:
    """Messages and tools ready for ``apply_chat_template``.

    Returns the tools to pass to the template (``None`` when they were folded into the system message).
    """
    native = template_supports_tools(tokenizer)
    out: list[Message] = []
    for message in messages:
        message = copy.copy(message)
        calls = message.get("tool_calls")
        if calls and not native:
            text = _text_of(message.get("content"))
            message["content"] = (text + "\n" if text else "") + tool_calls_as_text(calls)
            message.pop("tool_calls", None)
        elif not calls or not native:
            message["content"] = _text_of(message.get("content"))
        out.append(message)
    if tools and not native:
        prompt = tools_system_prompt(tools)
        if out and out[0].get("role") == "system":
            out[0] = {**out[0], "content": f"{out[0]['content']}\n\n{prompt}"}
        else:
            out.insert(0, {"role": "system", "content": prompt})
        return out, None
    return out, (tools or None)


def render(
    tokenizer: Any,
    messages: list[Message],
    tools: list[dict[str, Any]] | None,
    add_generation_prompt: bool,
) -> str:
    """The chat template's text for already-normalised messages."""
    if not getattr(tokenizer, "chat_template", None):
        raise BackendError(
            "The model's tokenizer has no chat template, so chat messages cannot be formatted for it. Use an "
            "instruct/chat model, or one whose tokenizer_config.json (or GGUF metadata) carries a chat_template."
        )
    kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": add_generation_prompt}
    if tools:
        kwargs["tools"] = tools
    text = tokenizer.apply_chat_template(messages, **kwargs)
    return str(text)


def prompt_ids(tokenizer: Any, messages: list[Message], tools: list[dict[str, Any]] | None) -> list[int]:
    """Token ids of a generation prompt for OpenAI-format ``messages`` (and ``tools``)."""
    normalised, template_tools = normalise_messages(tokenizer, messages, tools)
    text = render(tokenizer, normalised, template_tools, add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def training_ids(
    tokenizer: Any, messages: list[Message], tools: list[dict[str, Any]] | None, max_length: int
) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for one training conversation; labels are ``-100`` outside assistant turns.

    Assistant spans are found in characters (the text of the conversation up to each assistant turn with the
    generation prompt, and up to its end), then mapped onto tokens through the tokenizer's offsets; this does not
    depend on how BPE splits the boundary. The sequence is cut to ``max_length`` tokens.
    """
    normalised, template_tools = normalise_messages(tokenizer, messages, tools)
    full = render(tokenizer, normalised, template_tools, add_generation_prompt=False)
    spans: list[tuple[int, int]] = []
    cursor = 0
    for index, message in enumerate(normalised):
        if message.get("role") != "assistant":
            continue
        before = render(tokenizer, normalised[:index], template_tools, add_generation_prompt=True)
        through = render(tokenizer, normalised[: index + 1], template_tools, add_generation_prompt=False)
        if full.startswith(before) and full.startswith(through) and len(through) > len(before):
            spans.append((len(before), len(through)))
            cursor = len(through)
        else:
            # A template that renders a turn differently depending on what follows: fall back to the content.
            content = _text_of(message.get("content"))
            start = full.find(content, cursor) if content else -1
            if start >= 0:
                spans.append((start, start + len(content)))
                cursor = start + len(content)
    encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])[:max_length]
    offsets = list(encoded["offset_mapping"])[:max_length]
    labels = [-100] * len(ids)
    for position, (start, end) in enumerate(offsets):
        if end > start and any(s <= start < e for s, e in spans):
            labels[position] = ids[position]
    return ids, labels
