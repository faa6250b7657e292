"""Tool-calling metrics without a judge.

Calls are compared after JSON normalisation: arguments given as a JSON string or as an object are the same, object
key order does not matter, and ``1`` equals ``1.0`` (but ``true`` is not ``1`` and ``"1"`` is not ``1``). Several
calls in one answer (parallel calls) are compared as a multiset, so their order does not matter.

Per-sample definitions (the reported scores are means over samples):

* ``function_name`` — 1 if the candidate calls the same functions as the teacher. For the usual single call this is
  the reference's meaning (the first call's name equals the teacher's); with several calls the names are compared
  as a multiset, so parallel calls in another order still count. When the teacher made no call, 1 if the candidate
  made none either.
* ``function_name_and_args_accuracy`` — 1 if the multiset of normalised calls (name + arguments) equals the teacher's.
* ``function_args_f1`` — partial credit: F1 between the multisets of ``(function, argument, normalised value)``
  items of the two answers (a call without arguments contributes one ``(function, -, -)`` item). Extra arguments cost
  precision, missing ones recall. Both answers without calls → 1; exactly one without calls → 0.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NormalizedCall:
    """A tool call reduced to what is compared: name and canonical JSON-like arguments."""

    name: str
    arguments: Any

    def key(self) -> str:
        """A canonical string: equal for calls that are equal after normalisation."""
        return json.dumps([self.name, self.arguments], sort_keys=True, ensure_ascii=False)


def normalize_value(value: Any) -> Any:
    """Canonical JSON value: integral floats become ints, containers are normalised recursively."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, Mapping):
        return {str(k): normalize_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalize_value(v) for v in value]
    return str(value)


def parse_arguments(arguments: Any) -> Any:
    """Arguments as a JSON value: JSON strings are decoded (an undecodable string stays a string); ``None`` → ``{}``."""
    if arguments is None:
        return {}
    if isinstance(arguments, str):
        text = arguments.strip()
        if not text:
            return {}
        try:
            arguments = json.loads(text)
        except ValueError:
            return arguments
    return normalize_value(arguments)


def normalize_call(call: Any) -> NormalizedCall | None:
    """A call in OpenAI shape (``{"function": {"name", "arguments"}}``, or ``{"name", "arguments"}``), normalised;
    ``None`` when it has no function name."""
    if not isinstance(call, Mapping):
        return None
    function = call.get("function") if isinstance(call.get("function"), Mapping) else call
    assert isinstance(function, Mapping)
    name = function.get("name")
    if not isinstance(name, str) or not name:
        return None
    return NormalizedCall(name=name, arguments=parse_arguments(function.get("arguments")))


def normalize_calls(calls: Sequence[Any] | None) -> list[NormalizedCall]:
    """Every call with a name, normalised, in the original order."""
    return [c for c in (normalize_call(x) for x in calls or []) if c is not None]


def function_name_match(teacher: Sequence[NormalizedCall], candidate: Sequence[NormalizedCall]) -> float:
    """1.0 if both answers call the same functions (names as a multiset; neither calling counts), else 0.0."""
    return 1.0 if Counter(c.name for c in teacher) == Counter(c.name for c in candidate) else 0.0


def calls_exact_match(teacher: Sequence[NormalizedCall], candidate: Sequence[NormalizedCall]) -> float:
    """1.0 if the two answers make the same calls (names and arguments, any order), else 0.0."""
    return 1.0 if Counter(c.key() for c in teacher) == Counter(c.key() for c in candidate) else 0.0


def _argument_items(calls: Sequence[NormalizedCall]) -> Counter[str]:
    items: Counter[str] = Counter()
    for call in calls:
        if isinstance(call.arguments, Mapping) and call.arguments:
            for arg, value in call.arguments.items():
                items[json.dumps([call.name, arg, value], sort_keys=True, ensure_ascii=False)] += 1
        elif isinstance(call.arguments, Mapping):
            items[json.dumps([call.name, None, None])] += 1
        else:  # arguments that are not an object (unparseable string, list…): one item for the whole value
            items[json.dumps([call.name, "", call.arguments], sort_keys=True, ensure_ascii=False)] += 1
    return items


def arguments_f1(teacher: Sequence[NormalizedCall], candidate: Sequence[NormalizedCall]) -> float:
    """F1 between the ``(function, argument, value)`` item multisets of the two answers."""
    want = _argument_items(teacher)
    got = _argument_items(candidate)
    if not want and not got:
        return 1.0
    if not want or not got:
        return 0.0
    overlap = sum((want & got).values())
    if overlap == 0:
        return 0.0
    precision = overlap / sum(got.values())
    recall = overlap / sum(want.values())
    return 2 * precision * recall / (precision + recall)
