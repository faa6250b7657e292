"""Identifiers: time-sortable ids, and names that are safe as one path component."""

from __future__ import annotations

import pytest

from flywheel.ids import id_timestamp, new_id, safe_name


def test_ids_sort_by_creation_time_and_carry_it() -> None:
    first, second = new_id(1_700_000_000.0), new_id(1_700_000_000.5)
    assert len(first) == 26 and first < second
    assert id_timestamp(second) == pytest.approx(1_700_000_000.5)


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("news-classifier_v1.2", "news-classifier_v1.2"),
        ("meta/llama-3.2-1b-instruct", "meta_llama-3.2-1b-instruct"),
        ("../../etc/passwd", "etc_passwd"),
        ("a  b\\c", "a_b_c"),
        ("...", "_"),
        ("", "_"),
    ],
)
def test_safe_name_is_one_path_component_of_safe_characters(name: str, safe: str) -> None:
    assert safe_name(name) == safe
