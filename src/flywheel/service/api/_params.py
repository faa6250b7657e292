"""Bounds shared by the routes' query and path parameters.

Every number a client sends has a lower and an upper bound, and every string a length limit and no NUL character
(PostgreSQL text cannot hold one). An out-of-range value is then a 422 that names the parameter, not a database
error (a 500). The bounds are in the OpenAPI, so a generated client knows them too.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path, Query

from flywheel.store import NAME_CHARS

#: Most items one page returns.
MAX_LIMIT = 500
#: Largest 32-bit signed integer: the range every generated client holds, and that of the store's integer ids.
INT32_MAX = 2**31 - 1
#: Largest offset accepted; no store pages that far.
MAX_OFFSET = INT32_MAX
#: Longest text parameter, in characters: what the store's name columns hold.
MAX_TEXT = NAME_CHARS
#: Text without a NUL character.
NO_NUL = r"^[^\x00]*$"

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page (1–{MAX_LIMIT}).")]
Offset = Annotated[
    int, Query(ge=0, le=MAX_OFFSET, description=f"Items skipped before the page (0–{MAX_OFFSET}).")
]
Order = Literal["asc", "desc"]


def text_query(description: str, max_length: int = MAX_TEXT) -> Any:
    """A text query parameter (a filter): at most ``max_length`` characters, no NUL."""
    return Query(max_length=max_length, pattern=NO_NUL, description=description)


#: An object id in a path (a job id): at most 255 characters, no NUL; an unknown id is a 404.
JobId = Annotated[str, Path(max_length=MAX_TEXT, pattern=NO_NUL, description="The job's id.")]
