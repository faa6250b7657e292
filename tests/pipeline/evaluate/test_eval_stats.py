"""Bootstrap intervals: seeded, sensible, degenerate cases."""

from __future__ import annotations

import numpy as np
import pytest

from flywheel.pipeline.evaluate import bootstrap, bootstrap_mean


def test_bootstrap_mean_is_reproducible_with_a_seed_and_brackets_the_mean() -> None:
    values = [1.0, 0.0] * 50
    a = bootstrap_mean(values, seed=3)
    b = bootstrap_mean(values, seed=3)
    assert a == b
    assert a.value == 0.5 and a.n == 100
    assert 0.35 < a.ci_low < 0.5 < a.ci_high < 0.65


def test_different_seeds_give_different_intervals() -> None:
    values = list(np.linspace(0, 1, 37))
    assert bootstrap_mean(values, seed=1) != bootstrap_mean(values, seed=2)


def test_constant_values_and_single_sample_collapse_the_interval() -> None:
    flat = bootstrap_mean([1.0] * 20)
    assert (flat.value, flat.ci_low, flat.ci_high) == (1.0, 1.0, 1.0)
    one = bootstrap_mean([0.3])
    assert (one.value, one.ci_low, one.ci_high, one.n) == (0.3, 0.3, 0.3, 1)


def test_bootstrap_of_a_mean_statistic_matches_the_vectorised_mean_closely() -> None:
    x = np.random.default_rng(0).random(60)
    generic = bootstrap(lambda idx: float(x[idx].mean()), len(x), seed=5)
    fast = bootstrap_mean(x.tolist(), seed=5)
    assert generic.value == pytest.approx(fast.value)
    assert generic.ci_low == pytest.approx(fast.ci_low, abs=0.03)
    assert generic.ci_high == pytest.approx(fast.ci_high, abs=0.03)


def test_no_samples_is_refused() -> None:
    with pytest.raises(ValueError):
        bootstrap_mean([])
