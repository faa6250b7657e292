"""Reading JSONL files of objects: log records, dataset artifacts, predictions.

Kept outside the pipeline packages so that a light caller (``flywheel score``) does not import the store or numpy to
read a file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson

from flywheel.errors import DataError


def read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    """The objects of a JSONL file, in order (blank lines skipped).

    A line that is not a JSON object raises :class:`DataError` naming the file and line.
    """
    rows: list[dict[str, Any]] = []
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                try:  # the standard parser also takes NaN and Infinity, which orjson refuses
                    obj = json.loads(line)
                except ValueError as exc:
                    raise DataError(
                        f"{path}:{number}: not valid JSON ({exc}). Fix or remove that line."
                    ) from exc
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}.")
            rows.append(obj)
    return rows
