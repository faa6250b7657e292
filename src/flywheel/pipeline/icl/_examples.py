"""Few-shot example text, token budgets and injection into an eval record (spec §7.8, with the quirks fixed)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from flywheel.pipeline.records import RecordView, content_text, with_messages

Record = dict[str, Any]
#: Counts the tokens of a text: returns an int, or a sequence of token ids (its length is used).
Tokenizer = Callable[[str], "int | Sequence[int]"]

DEFAULT_INTRO = (
    "You are a helpful assistant that can answer questions and help with tasks.\n"
    "Here are some examples of how you should respond to different types of requests:"
)
NO_TOOL = "no_tool"


def count_tokens(text: str, tokenizer: Tokenizer | None = None) -> int:
    """Tokens in ``text``: the tokenizer's count when given, else an estimate of one token per 4 characters.

    Either way a 20% safety margin is added (as the reference does), so the budget is not overrun by a model whose
    tokenizer differs from the one used to count.
    """
    if not text:
        return 0
    if tokenizer is not None:
        counted = tokenizer(text)
        n = counted if isinstance(counted, int) else len(counted)
    else:
        n = math.ceil(len(text) / 4)
    return n + n * 20 // 100


def teacher_tool_name(record: Record) -> str:
    """Name of the first tool the teacher called, else ``no_tool``."""
    name = RecordView(record).teacher_tool_name
    return name if name is not None else NO_TOOL


def last_user_query(record: Record) -> str | None:
    """Text of the last user message of the request (None when there is none)."""
    for message in reversed(RecordView(record).messages):
        if isinstance(message, dict) and message.get("role") == "user":
            text = content_text(message.get("content"))
            return text or None
    return None


def format_example(record: Record) -> str:
    """A train record as a worked example: the conversation, then the teacher's answer (and tool calls)."""
    view = RecordView(record)
    parts = ["For example, if the conversation looks like this:\n"]
    for message in view.messages:
        parts.append(f"{message.get('role', 'user')}: {content_text(message.get('content'))}\n\n")
    answer = view.teacher_message
    parts.append("\nThen you'll respond with:\n")
    parts.append(f"{answer.get('role', 'assistant')}: {content_text(answer.get('content'))}")
    if view.teacher_tool_calls:
        calls = orjson.dumps(view.teacher_tool_calls, option=orjson.OPT_INDENT_2).decode()
        parts.append(f"\nTool calls:\n{calls}")
    return "".join(parts)


@dataclass(frozen=True)
class Example:
    """One candidate few-shot example."""

    text: str
    tokens: int
    group: str


def make_example(record: Record, tokenizer: Tokenizer | None = None) -> Example:
    """Format a train record and count its tokens."""
    text = format_example(record)
    return Example(text=text, tokens=count_tokens(text, tokenizer), group=teacher_tool_name(record))


def uniform_bins(max_examples: int, n_groups: int) -> list[int]:
    """Spread ``max_examples`` over ``n_groups`` as evenly as possible, earlier groups first."""
    if n_groups <= 0:
        return []
    base, extra = divmod(max_examples, n_groups)
    return [base + (1 if i < extra else 0) for i in range(n_groups)]


def available_tokens(
    record: Record, max_context_length: int, reserved_tokens: int, tokenizer: Tokenizer | None
) -> int:
    """Token budget left for examples in the prompt of ``record``."""
    own = count_tokens(orjson.dumps(record).decode(), tokenizer)
    return max_context_length - reserved_tokens - own


def fit_examples(groups: dict[str, list[Example]], available: int, max_examples: int) -> list[Example]:
    """Round-robin over the groups (in order), adding each example that still fits the budget.

    Unlike the reference, an example that does not fit is skipped instead of ending the selection, so a long example
    early in one group cannot crowd out short ones from the others.
    """
    chosen: list[Example] = []
    used = 0
    depth = max((len(g) for g in groups.values()), default=0)
    for r in range(depth):
        for examples in groups.values():
            if len(chosen) >= max_examples:
                return chosen
            if r < len(examples) and used + examples[r].tokens <= available:
                chosen.append(examples[r])
                used += examples[r].tokens
    return chosen


def inject_examples(record: Record, examples: Sequence[Example], intro: str = DEFAULT_INTRO) -> Record:
    """A copy of the eval record whose system message starts with the intro and the examples (the record itself is
    left as it is; the copy shares its unchanged parts)."""
    if not examples:
        return record
    block = intro + "\n\n" + "\n\n".join(e.text for e in examples)
    messages = list(RecordView(record).messages)
    for i, message in enumerate(messages):
        if message.get("role") == "system":
            old = content_text(message.get("content"))
            messages[i] = {**message, "content": f"{block}\n\n{old}" if old else block}
            break
    else:
        messages.insert(0, {"role": "system", "content": block})
    return with_messages(record, messages)
