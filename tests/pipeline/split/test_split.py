"""The split: exact sizes, disjoint, complete, reproducible, stratified when possible, never crashing."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flywheel.errors import DataError
from flywheel.pipeline.split import check_raw_count, check_selected_count, planned_sizes, split_records

labels_strategy = st.lists(
    st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d"]), st.text("xyz", min_size=1, max_size=3)),
    min_size=0,
    max_size=80,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    labels=labels_strategy,
    eval_size=st.integers(0, 100),
    val_ratio=st.floats(0.0, 0.99),
    seed=st.integers(0, 2**31 - 1),
    stratify=st.booleans(),
    rare=st.integers(0, 3),
)
def test_split_properties_hold_for_any_class_layout(
    labels: list[str | None], eval_size: int, val_ratio: float, seed: int, stratify: bool, rare: int
) -> None:
    result = split_records(
        labels,
        eval_size=eval_size,
        val_ratio=val_ratio,
        seed=seed,
        stratify=stratify,
        rare_class_threshold=rare,
    )
    n = len(labels)
    assert (len(result.eval), len(result.train), len(result.val)) == planned_sizes(n, eval_size, val_ratio)
    parts = [set(result.eval), set(result.train), set(result.val)]
    assert sum(len(p) for p in parts) == n  # no index twice
    assert parts[0] | parts[1] | parts[2] == set(range(n))
    # Every class with at least two records is in train whenever train has room for all such classes.
    counts = Counter("no_label" if lab is None else lab for lab in labels)
    enough = {c for c, k in counts.items() if k >= 2}
    if len(result.train) >= len(enough):
        in_train = {"no_label" if labels[i] is None else labels[i] for i in result.train}
        assert enough <= in_train
    # Same seed, same split.
    again = split_records(
        labels,
        eval_size=eval_size,
        val_ratio=val_ratio,
        seed=seed,
        stratify=stratify,
        rare_class_threshold=rare,
    )
    assert (again.eval, again.train, again.val) == (result.eval, result.train, result.val)


@pytest.mark.parametrize(
    ("n", "eval_size", "val_ratio", "sizes"), [(100, 5, 0.1, (5, 85, 10)), (200, 20, 0.15, (20, 153, 27))]
)
def test_sizes_match_the_reference(
    n: int, eval_size: int, val_ratio: float, sizes: tuple[int, int, int]
) -> None:
    result = split_records([None] * n, eval_size=eval_size, val_ratio=val_ratio, seed=42)
    assert (len(result.eval), len(result.train), len(result.val)) == sizes


@pytest.mark.parametrize(
    ("labels", "eval_size", "expect"),
    [
        (["a"] * 30 + ["b"], 5, "pooled 1 rare class"),  # one singleton: sklearn alone would raise
        ([str(i) for i in range(30)], 5, "random"),  # all singletons
        (["a"] * 10, 3, "random (a single class)"),
        (["a"] * 5 + ["b"] * 5, 10, "reduced to 9"),  # eval_size >= records
        (["a", "a", "b", "b", "c", "c"], 3, "eval:"),  # tiny train
    ],
)
def test_awkward_layouts_fall_back_and_say_so(labels: list[str], eval_size: int, expect: str) -> None:
    result = split_records(labels, eval_size=eval_size, val_ratio=0.25, seed=0)
    assert len(result.train) >= 1
    assert any(expect in d for d in result.decisions), result.decisions


def test_eval_and_val_are_stratified_when_possible() -> None:
    labels = ["a"] * 600 + ["b"] * 300 + ["c"] * 100
    result = split_records(labels, eval_size=100, val_ratio=0.2, seed=3)
    counts = result.class_counts(labels)
    assert counts["eval"] == {"a": 60, "b": 30, "c": 10}
    assert counts["val"] == {"a": 108, "b": 54, "c": 18}
    assert "eval: stratified over 3 strata" in result.decisions
    assert "val: stratified over 3 strata" in result.decisions


def test_different_seeds_give_different_splits_and_no_seed_records_the_one_drawn() -> None:
    labels = [None] * 50
    a = split_records(labels, eval_size=5, val_ratio=0.1, seed=42)
    b = split_records(labels, eval_size=5, val_ratio=0.1, seed=123)
    assert (a.eval, a.val) != (b.eval, b.val)
    drawn = split_records(labels, eval_size=5, val_ratio=0.1, seed=None)
    replay = split_records(labels, eval_size=5, val_ratio=0.1, seed=drawn.seed)
    assert (drawn.eval, drawn.train, drawn.val) == (replay.eval, replay.train, replay.val)


def test_bad_val_ratio_is_rejected_with_a_message() -> None:
    with pytest.raises(DataError, match=r"val_ratio must be in \[0, 1\)"):
        split_records(["a"] * 10, eval_size=2, val_ratio=1.0)


def test_count_checks_use_the_reference_messages_in_order() -> None:
    with pytest.raises(DataError) as exc:
        check_raw_count(10, min_total_records=20, eval_size=5, limit=None)
    assert str(exc.value) == (
        "Not enough records found for the given workload. A minimum of 20 records is required, but only 10 were found."
    )
    with pytest.raises(DataError) as exc:
        check_raw_count(25, min_total_records=20, eval_size=30, limit=None)
    assert str(exc.value) == (
        "eval_size cannot be larger than the total number of records. eval_size is 30, but only 25 records were found."
    )
    with pytest.raises(DataError) as exc:
        check_raw_count(25, min_total_records=20, eval_size=5, limit=10)
    assert str(exc.value) == (
        "limit cannot be less than the minimum number of records. limit is 10, but the minimum number of records is 20."
    )
    check_raw_count(25, min_total_records=20, eval_size=5, limit=None)
    with pytest.raises(DataError) as exc:
        check_selected_count(3, min_total_records=5, total=17, valid_format=10, after_quality_filter=8)
    assert str(exc.value) == (
        "Insufficient valid records. Found 3 but need 5. Total records: 17, valid OpenAI format: 10, "
        "after quality filters: 8. Please provide more valid records."
    )
