"""The cost model follows its documented formulas (numbers worked out by hand in each test)."""

from __future__ import annotations

import pytest

from flywheel.pipeline.report import (
    Price,
    Usage,
    parameter_cost,
    parameters_from_name,
    priced_cost,
    saving_pct,
)
from flywheel.pipeline.report._cost import choose_basis


def test_parameter_cost_is_two_flops_per_parameter_per_token() -> None:
    # 2 × 70 (billion parameters) × (120 prompt + 8 completion tokens) = 17,920 PFLOP per 1M requests
    teacher = parameter_cost("teacher", 70.0, Usage(120.0, 8.0))
    # 2 × 1 × (150 + 10) = 320 PFLOP
    candidate = parameter_cost("small", 1.0, Usage(150.0, 10.0))
    assert teacher.value == pytest.approx(17_920.0)
    assert teacher.unit == "PFLOP" and teacher.basis == "parameters"
    assert candidate.value == pytest.approx(320.0)
    # saving = 1 − 320 / 17,920 = 98.214…%
    assert saving_pct(teacher, candidate) == pytest.approx(100 * (1 - 320 / 17_920))
    assert saving_pct(teacher, candidate) == pytest.approx(98.2142857, rel=1e-6)


def test_same_tokens_reduce_to_the_parameter_ratio() -> None:
    usage = Usage(200.0, 20.0)
    saving = saving_pct(parameter_cost("t", 70.0, usage), parameter_cost("c", 1.0, usage))
    assert saving == pytest.approx(100 * (1 - 1 / 70))  # the reference's "98.6% cheaper"
    assert round(saving, 1) == 98.6


def test_token_prices_give_dollars_per_million_requests() -> None:
    # $3 per 1M input tokens × 500 tokens + $15 per 1M output tokens × 40 tokens = $1,500 + $600 = $2,100
    cost = priced_cost("big", Price(input_per_1m=3.0, output_per_1m=15.0), Usage(500.0, 40.0))
    assert cost.value == pytest.approx(2_100.0)
    assert cost.unit == "USD" and cost.basis == "prices"


def test_gpu_hour_price_uses_measured_throughput() -> None:
    # $2.50 per GPU-hour at 4 requests/s: 1e6 requests take 250,000 s = 69.44 h → $173.61
    cost = priced_cost("small", Price(gpu_hour=2.5), Usage(100.0, 5.0, requests_per_s=4.0))
    assert cost.value == pytest.approx(1e6 * 2.5 / (3600 * 4.0))
    assert cost.value == pytest.approx(173.6111, rel=1e-5)


def test_costs_that_cannot_be_estimated_say_why() -> None:
    no_size = parameter_cost("mystery", None, Usage(10.0, 1.0))
    assert no_size.value is None and "parameters_b" in (no_size.reason or "")
    no_rate = priced_cost("small", Price(gpu_hour=2.0), Usage(10.0, 1.0))
    assert no_rate.value is None and "throughput" in (no_rate.reason or "")
    assert priced_cost("x", None, Usage(1.0, 1.0)).reason == "no price for 'x' in cost.prices"
    assert saving_pct(no_size, parameter_cost("c", 1.0, Usage(1.0, 1.0))) is None


def test_a_saving_is_only_computed_on_one_basis() -> None:
    dollars = priced_cost("t", Price(1.0, 1.0), Usage(10.0, 10.0))
    flops = parameter_cost("c", 1.0, Usage(10.0, 10.0))
    assert saving_pct(dollars, flops) is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("meta/llama-3.3-70b-instruct", 70.0),
        ("meta/llama-3.2-1b-instruct", 1.0),
        ("smollm2-135m-instruct", 0.135),
        ("Qwen2.5-1.5B-Instruct", 1.5),
        ("mistral-7b-v0.1", 7.0),
        ("gpt-4o-mini", None),
        (None, None),
    ],
)
def test_parameters_are_read_off_model_names(name: str | None, expected: float | None) -> None:
    assert parameters_from_name(name) == (pytest.approx(expected) if expected is not None else None)


def test_a_partial_price_table_falls_back_to_parameters_with_a_note() -> None:
    usage = Usage(10.0, 2.0)
    prices = {"teacher": Price(1.0, 2.0)}
    basis, notes = choose_basis("teacher", usage, {"small": [usage]}, prices)
    assert basis == "parameters"
    assert "'small'" in notes[0]
    basis, notes = choose_basis("teacher", usage, {"small": [usage]}, {**prices, "small": Price(0.1, 0.2)})
    assert (basis, notes) == ("prices", [])
