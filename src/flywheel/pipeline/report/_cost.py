"""The cost model: what serving one million requests costs with the teacher and with a candidate.

Two bases, chosen per report (the same basis for the teacher and every candidate, so the saving is meaningful):

``prices`` — when the price table (config ``cost.prices``) covers the teacher *and* the candidate, in US dollars::

    token prices:  $ per 1M requests = p_in × T_in + p_out × T_out
                   (p_in, p_out: $ per 1M input/output tokens; T_in, T_out: mean prompt/completion tokens per request)
    GPU-hours:     $ per 1M requests = 1e6 × gpu_hour / (3600 × R)
                   (gpu_hour: $ per GPU-hour; R: measured throughput of the evaluation, requests per second)

``parameters`` — otherwise, by default: compute is proportional to parameters × tokens processed. A forward pass
costs about 2 FLOPs per parameter per token, so::

    PFLOP per 1M requests = 2 × P × (T_in + T_out)
    (P: parameters in billions; 2 × P·1e9 × T × 1e6 requests = 2·P·T·1e15 FLOP)

The saving of a candidate is ``100 × (1 − candidate cost / teacher cost)`` %. With equal token counts the
``parameters`` basis reduces to the parameter ratio (70B → 1B: 98.6 %); with the real counts of a workload it also
reflects what an ICL prompt adds and how long each model's answers are.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

Basis = Literal["prices", "parameters"]

FORMULAS: dict[str, str] = {
    "parameters": "PFLOP per 1M requests = 2 × P[billions of parameters] × (mean prompt tokens + mean completion "
    "tokens); saving = 1 − candidate / teacher",
    "token_prices": "$ per 1M requests = $/1M input tokens × mean prompt tokens + $/1M output tokens × mean "
    "completion tokens",
    "gpu_hour": "$ per 1M requests = 1e6 × $/GPU-hour ÷ (3600 × measured requests per second)",
}

_SIZE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*([bBmM])(?![a-zA-Z])")


def parameters_from_name(model_name: str | None) -> float | None:
    """Billions of parameters read off a model name (``llama-3.3-70b-instruct`` → 70, ``smollm2-135m`` → 0.135).

    The largest size mentioned wins (``8x7b`` style names are not multiplied out); None when there is none.
    """
    if not model_name:
        return None
    sizes = []
    for number, unit in _SIZE.findall(model_name):
        value = float(number)
        sizes.append(value if unit.lower() == "b" else value / 1000.0)
    return max(sizes) if sizes else None


@dataclass(frozen=True)
class Price:
    """One model's price entry (``cost.prices[model]``); any field may be missing."""

    input_per_1m: float | None = None
    output_per_1m: float | None = None
    gpu_hour: float | None = None

    @property
    def has_token_prices(self) -> bool:
        return self.input_per_1m is not None and self.output_per_1m is not None

    @classmethod
    def from_mapping(cls, entry: Mapping[str, Any] | None) -> Price | None:
        if not entry:
            return None
        return cls(entry.get("input_per_1m"), entry.get("output_per_1m"), entry.get("gpu_hour"))


@dataclass(frozen=True)
class Usage:
    """What one request of a model processes: mean prompt and completion tokens, and measured throughput."""

    prompt_tokens: float | None
    completion_tokens: float | None
    requests_per_s: float | None = None

    @property
    def tokens(self) -> float | None:
        if self.prompt_tokens is None or self.completion_tokens is None:
            return None
        return self.prompt_tokens + self.completion_tokens


class CostJSON(TypedDict):
    """:class:`Cost` as JSON (in the report's ``cost`` entries)."""

    value: float | None
    basis: Basis | None
    unit: str | None
    formula: str | None
    reason: str | None


@dataclass(frozen=True)
class Cost:
    """A cost per 1M requests on one basis, or the reason it could not be estimated."""

    value: float | None
    basis: Basis | None
    unit: str | None
    formula: str | None
    reason: str | None = None

    def to_json(self) -> CostJSON:
        return {
            "value": self.value,
            "basis": self.basis,
            "unit": self.unit,
            "formula": self.formula,
            "reason": self.reason,
        }


def _unknown(reason: str) -> Cost:
    return Cost(None, None, None, None, reason)


def priced_cost(model: str, price: Price | None, usage: Usage) -> Cost:
    """$ per 1M requests from a price entry: token prices when both are set, else GPU-hours × measured throughput."""
    if price is None:
        return _unknown(f"no price for {model!r} in cost.prices")
    if price.has_token_prices:
        if usage.prompt_tokens is None or usage.completion_tokens is None:
            return _unknown(f"no token counts for {model!r}")
        assert price.input_per_1m is not None and price.output_per_1m is not None
        value = price.input_per_1m * usage.prompt_tokens + price.output_per_1m * usage.completion_tokens
        return Cost(value, "prices", "USD", FORMULAS["token_prices"])
    if price.gpu_hour is not None:
        rate = usage.requests_per_s
        if rate is None or not math.isfinite(rate) or rate <= 0:
            return _unknown(f"no measured throughput for {model!r} to turn its GPU-hour price into a cost")
        return Cost(1e6 * price.gpu_hour / (3600.0 * rate), "prices", "USD", FORMULAS["gpu_hour"])
    return _unknown(f"the price entry of {model!r} sets neither token prices nor gpu_hour")


def parameter_cost(model: str, parameters_b: float | None, usage: Usage) -> Cost:
    """PFLOP per 1M requests: ``2 × P × (T_in + T_out)``."""
    if parameters_b is None:
        return _unknown(
            f"unknown size of {model!r}: set its parameters_b (cost.teacher_parameters_b for the teacher)"
        )
    tokens = usage.tokens
    if tokens is None:
        return _unknown(f"no token counts for {model!r}")
    return Cost(2.0 * parameters_b * tokens, "parameters", "PFLOP", FORMULAS["parameters"])


def saving_pct(teacher: Cost, candidate: Cost) -> float | None:
    """``100 × (1 − candidate / teacher)`` when both are on the same basis and the teacher's cost is positive."""
    if teacher.value is None or candidate.value is None or teacher.basis != candidate.basis:
        return None
    if teacher.unit != candidate.unit or teacher.value <= 0:
        return None
    return 100.0 * (1.0 - candidate.value / teacher.value)


def choose_basis(
    teacher_model: str | None,
    teacher_usage: Usage,
    candidates: Mapping[str, list[Usage]],
    prices: Mapping[str, Price],
) -> tuple[Basis, list[str]]:
    """``prices`` when every model (the teacher and each candidate's evaluations) can be priced, else ``parameters``.

    Returns the basis and notes explaining a fallback, so a partly filled price table is never silently ignored.
    """
    notes: list[str] = []
    if not prices:
        return "parameters", notes
    missing: list[str] = []
    teacher_price = prices.get(teacher_model or "")
    if (
        teacher_price is None
        or priced_cost(teacher_model or "teacher", teacher_price, teacher_usage).value is None
    ):
        missing.append(f"teacher {teacher_model!r}")
    for name, usages in candidates.items():
        price = prices.get(name)
        if price is None or any(priced_cost(name, price, u).value is None for u in usages):
            missing.append(repr(name))
    if missing:
        notes.append(
            "cost.prices does not price "
            + ", ".join(missing)
            + "; costs use the parameters × tokens estimate."
        )
        return "parameters", notes
    return "prices", notes


def estimate(basis: Basis, model: str, parameters_b: float | None, price: Price | None, usage: Usage) -> Cost:
    """The cost per 1M requests of ``model`` on ``basis``."""
    if basis == "prices":
        return priced_cost(model, price, usage)
    return parameter_cost(model, parameters_b, usage)
