"""Dedup key (ordered, normalised user contents) and MinHash near-duplicates."""

from __future__ import annotations

import pytest

from flywheel.pipeline.curate import ExactDeduplicator, MinHashDeduplicator, dedup_key


def test_key_ignores_whitespace_and_case_but_not_order() -> None:
    assert dedup_key(["Hello   World\n"]) == dedup_key(["hello world"])
    assert dedup_key(["a", "b"]) != dedup_key(["b", "a"])
    assert dedup_key(["a b"]) != dedup_key(["a", "b"])
    assert dedup_key([]) is None


def test_first_occurrence_wins_and_keyless_records_are_kept() -> None:
    d = ExactDeduplicator()
    assert [d.is_duplicate(k) for k in (b"x", b"y", b"x", None, None)] == [False, False, True, False, False]


def test_minhash_catches_a_one_word_edit_but_not_different_texts() -> None:
    base = "please summarise the quarterly revenue report for the european sales team and list the top risks"
    d = MinHashDeduplicator(0.7)
    assert not d.is_duplicate(base)
    assert d.is_duplicate(base.replace("top", "main"))
    assert not d.is_duplicate("what is the weather in paris tomorrow morning and should i take an umbrella")


def test_minhash_threshold_must_be_a_share() -> None:
    with pytest.raises(ValueError):
        MinHashDeduplicator(0.0)
