"""read_jsonl: the objects of a JSONL file; a bad line is a DataError naming the file and line."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from flywheel.errors import DataError
from flywheel.jsonl import read_jsonl


def test_objects_come_back_in_order_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text('{"a": 1}\n\n   \n{"b": "é"}\n{"c": [1, 2]}', encoding="utf-8")
    assert read_jsonl(path) == [{"a": 1}, {"b": "é"}, {"c": [1, 2]}]
    assert read_jsonl(str(path)) == read_jsonl(path)


def test_nan_and_infinity_are_read_as_python_json_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "scores.jsonl"
    path.write_text('{"x": NaN, "y": Infinity}\n', encoding="utf-8")
    (row,) = read_jsonl(path)
    assert math.isnan(row["x"]) and row["y"] == math.inf


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"ok": 1}\nnot json\n', r"bad\.jsonl:2: not valid JSON"),
        ('{"ok": 1}\n[1, 2]\n', r"bad\.jsonl:2: expected a JSON object, got list"),
        ('"just a string"\n', r"bad\.jsonl:1: expected a JSON object, got str"),
    ],
)
def test_a_bad_line_is_a_data_error_naming_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_jsonl(path)


def test_bytes_that_are_not_utf8_are_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"a": "\xff"}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:1: not valid JSON"):
        read_jsonl(path)
