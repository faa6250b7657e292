"""Judge-free tool-calling metrics: normalisation, partial credit, parallel calls."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flywheel.pipeline.evaluate import arguments_f1, calls_exact_match, function_name_match, normalize_calls


def call(name: str, arguments: Any) -> dict[str, Any]:
    return {"id": "c", "type": "function", "function": {"name": name, "arguments": arguments}}


TEACHER = [call("get_weather", {"city": "Paris", "days": 3})]


def scores(
    teacher: list[dict[str, Any]], candidate: list[dict[str, Any]] | None
) -> tuple[float, float, float]:
    t, c = normalize_calls(teacher), normalize_calls(candidate)
    return function_name_match(t, c), calls_exact_match(t, c), arguments_f1(t, c)


def test_string_encoded_reordered_and_float_arguments_are_equal() -> None:
    candidate = [call("get_weather", json.dumps({"days": 3.0, "city": "Paris"}))]
    assert scores(TEACHER, candidate) == (1.0, 1.0, 1.0)


def test_extra_argument_costs_precision() -> None:
    candidate = [call("get_weather", {"city": "Paris", "days": 3, "unit": "C"})]
    name, exact, f1 = scores(TEACHER, candidate)
    assert (name, exact) == (1.0, 0.0)
    assert f1 == pytest.approx(0.8)  # P = 2/3, R = 1


def test_missing_argument_costs_recall() -> None:
    name, exact, f1 = scores(TEACHER, [call("get_weather", '{"city": "Paris"}')])
    assert (name, exact) == (1.0, 0.0)
    assert f1 == pytest.approx(2 / 3)  # P = 1, R = 1/2


def test_string_number_is_not_the_number() -> None:
    _, exact, f1 = scores(TEACHER, [call("get_weather", {"city": "Paris", "days": "3"})])
    assert exact == 0.0
    assert f1 == pytest.approx(0.5)


def test_booleans_are_not_numbers() -> None:
    _, exact, _ = scores([call("f", {"x": 1})], [call("f", {"x": True})])
    assert exact == 0.0


def test_wrong_function_scores_zero_everywhere() -> None:
    assert scores(TEACHER, [call("get_time", {"city": "Paris", "days": 3})]) == (0.0, 0.0, 0.0)


def test_no_candidate_call_or_unnamed_call_scores_zero() -> None:
    assert scores(TEACHER, None) == (0.0, 0.0, 0.0)
    assert scores(TEACHER, [{"function": {"arguments": "{}"}}]) == (0.0, 0.0, 0.0)


def test_no_call_on_both_sides_is_a_match() -> None:
    assert scores([], []) == (1.0, 1.0, 1.0)


def test_unparseable_argument_string_is_compared_as_a_string() -> None:
    assert scores([call("f", "not json")], [call("f", "not json")]) == (1.0, 1.0, 1.0)
    assert scores([call("f", "not json")], [call("f", {"a": 1})])[1:] == (0.0, 0.0)


def test_parallel_calls_compare_as_a_set() -> None:
    teacher = [call("f", {"a": 1}), call("g", {"b": "x"})]
    candidate = [call("g", '{"b": "x"}'), call("f", {"a": 1.0})]
    assert scores(teacher, candidate) == (1.0, 1.0, 1.0)


def test_parallel_calls_with_one_missing() -> None:
    teacher = [call("f", {"a": 1}), call("g", {"b": "x"})]
    name, exact, f1 = scores(teacher, [call("f", {"a": 1})])
    assert (name, exact) == (0.0, 0.0)
    assert f1 == pytest.approx(2 / 3)  # P = 1, R = 1/2


def test_call_without_arguments_counts_as_one_item() -> None:
    assert scores([call("ping", {})], [call("ping", None)]) == (1.0, 1.0, 1.0)
    assert scores([call("ping", {})], [call("pong", {})]) == (0.0, 0.0, 0.0)


def test_nested_arguments_ignore_key_order() -> None:
    teacher = [call("f", {"filter": {"a": 1, "b": [1, 2]}})]
    candidate = [call("f", '{"filter": {"b": [1.0, 2], "a": 1}}')]
    assert scores(teacher, candidate) == (1.0, 1.0, 1.0)
