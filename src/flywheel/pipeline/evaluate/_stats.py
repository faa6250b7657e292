"""Bootstrap confidence intervals and latency percentiles.

Every interval is a percentile bootstrap over eval samples with a fixed seed, so the same inputs always give the same
interval. A statistic is any function of a vector of sample indices, which lets corpus-level metrics (macro-F1) be
resampled the same way as means.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: A statistic evaluated on a resample: takes an ``(n,)`` array of sample indices, returns a number.
Statistic = Callable[[NDArray[np.int64]], float]

#: Sample values: a sequence of numbers or a 1-D float array.
Values = Sequence[float] | NDArray[np.float64]

#: Resamples evaluated per chunk, to bound memory on large eval sets.
_CHUNK = 200


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval."""

    value: float
    ci_low: float
    ci_high: float
    n: int


def bootstrap(
    statistic: Statistic,
    n: int,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap of ``statistic`` over ``n`` samples (``n`` ≥ 1).

    With one sample the interval collapses to the point estimate.
    """
    if n < 1:
        raise ValueError("bootstrap needs at least one sample")
    value = float(statistic(np.arange(n, dtype=np.int64)))
    if n == 1 or n_boot < 1:
        return Interval(value, value, value, n)
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot, dtype=np.float64)
    for b in range(n_boot):
        stats[b] = statistic(rng.integers(0, n, size=n, dtype=np.int64))
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return Interval(value, float(low), float(high), n)


def _bootstrap_rows(
    values: Values,
    reduce: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    *,
    n_boot: int,
    confidence: float,
    seed: int,
) -> Interval:
    """Percentile bootstrap of a row-wise statistic: ``reduce`` maps an ``(m, n)`` block of resamples to ``(m,)``.

    Resamples are drawn and reduced a chunk at a time (vectorised, with bounded memory).
    """
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n < 1:
        raise ValueError("bootstrap needs at least one sample")
    value = float(reduce(x[np.newaxis, :])[0])
    if n == 1 or n_boot < 1:
        return Interval(value, value, value, n)
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot, dtype=np.float64)
    chunk = max(1, min(_CHUNK, 2_000_000 // n))
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        stats[start:stop] = reduce(x[idx])
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return Interval(value, float(low), float(high), n)


def bootstrap_mean(
    values: Values, *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Mean of ``values`` with a percentile bootstrap interval (vectorised)."""
    return _bootstrap_rows(
        values, lambda rows: rows.mean(axis=1), n_boot=n_boot, confidence=confidence, seed=seed
    )


def bootstrap_percentile(
    values: Values, q: float, *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """The ``q``-th percentile (0–100) of ``values`` with a percentile bootstrap interval (vectorised)."""
    return _bootstrap_rows(
        values,
        lambda rows: np.percentile(rows, q, axis=1),
        n_boot=n_boot,
        confidence=confidence,
        seed=seed,
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100, linear interpolation) of ``values``."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))
