"""The time window of a job or dataset build (``since`` / ``until``), checked the same way wherever it is given."""

from __future__ import annotations

import math
from datetime import UTC, datetime


def _when(ts: float) -> str:
    try:
        text = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{ts:.15g}"
    return f"{text} = {ts:.15g}"


def time_window_problems(since: float | None, until: float | None) -> list[tuple[str, str]]:
    """``(field, message)`` for each reason the log window ``[since, until)`` (epoch seconds) cannot be used:
    a bound that is not a finite number, or ``since`` not before ``until`` (the window would hold no logs)."""
    problems = [
        (name, f"{name} must be a finite time in epoch seconds or ISO-8601 (got {value})")
        for name, value in (("since", since), ("until", until))
        if value is not None and not math.isfinite(value)
    ]
    if not problems and since is not None and until is not None and since >= until:
        problems.append(
            (
                "until",
                f"until ({_when(until)}) must be after since ({_when(since)}); the window would hold no logs",
            )
        )
    return problems
