"""What every store can hold, checked before anything is written.

SQLite and PostgreSQL accept different things: PostgreSQL refuses a ``varchar(255)`` value longer than 255
characters and any text containing NUL, where SQLite stores both. Ingestion checks each record against the
stricter of the two, so a record is accepted or quarantined for the same reason on either store, and one bad record
never fails the batch its valid neighbours are written in.

The limits:

* ``workload_id`` / ``client_id``: at most :data:`MAX_ID_CHARS` characters (the column width), no NUL.
* nesting: at most :data:`MAX_DEPTH` levels of objects and arrays. The record's identity is a hash over its
  serialised JSON, and the serialiser (orjson) stops at 255 levels; Python code that walks a stored record
  (curation, PII scrubbing) stays well inside the interpreter's recursion limit too.
* size: at most :data:`MAX_RECORD_BYTES` of JSON text (UTF-8). Both stores take up to 1 GB in one value; the
  limit is far below that because every later stage holds a record in memory, and it is far above any real
  request/response pair (a full 1M-token context is ~4 MB of text).
* the JSON text itself never holds NUL: it is either the logged line (a NUL there is not valid JSON) or orjson's
  output (which escapes it).

Checking is cheap on the hot path: two ``len`` calls and two substring tests per record; the nesting limit costs
nothing because hashing enforces it (:func:`unserializable`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flywheel.errors import DataError
from flywheel.store import NAME_CHARS

if TYPE_CHECKING:
    from flywheel.pipeline.ingest._records import Rejection

#: Longest ``workload_id`` / ``client_id`` (characters): the width of their columns.
MAX_ID_CHARS = NAME_CHARS
#: Deepest nesting of objects and arrays in a record (the record itself is level 1).
MAX_DEPTH = 254
#: Largest record, as UTF-8 JSON text.
MAX_RECORD_BYTES = 32 * 1024 * 1024


def check_id(key: str, value: str) -> Rejection | None:
    """Why ``value`` cannot be stored as ``key`` (``workload_id`` / ``client_id``), or None when it can."""
    if len(value) <= MAX_ID_CHARS and "\x00" not in value:
        return None
    from flywheel.pipeline.ingest._records import Rejection  # here: _records imports this module

    if len(value) > MAX_ID_CHARS:
        return Rejection(f"{key} too long", f"{len(value)} characters, at most {MAX_ID_CHARS}")
    return Rejection(f"{key} contains NUL", "the NUL character (\\u0000) cannot be stored")


def too_large(size: int) -> Rejection:
    """The rejection of a record of ``size`` bytes (over :data:`MAX_RECORD_BYTES`)."""
    from flywheel.pipeline.ingest._records import Rejection

    return Rejection("record too large", f"{size} bytes of JSON, at most {MAX_RECORD_BYTES}")


def unserializable(exc: Exception) -> Rejection:
    """The rejection of a record orjson could not serialise (so it has no identity): nested too deeply, or (from
    the SDK) holding values JSON has no form for."""
    from flywheel.pipeline.ingest._records import Rejection

    message = str(exc)
    if "Recursion limit" in message:
        return Rejection("nested too deeply", f"more than {MAX_DEPTH} levels of objects and arrays")
    return Rejection("not serializable as JSON", message)


def storable_text(text: str) -> str:
    """``text`` as both stores can hold it: NUL written as ``\\u0000`` and lone surrogates (which UTF-8 cannot
    encode) as ``\\udXXX``. For text kept only to be read by people (quarantined input, reasons)."""
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def check_overrides(workload_id: str | None, client_id: str | None) -> None:
    """Raise DataError when an id given for every record (``--workload-id``/``--client-id``) cannot be stored,
    rather than quarantining every record for it."""
    for key, value in (("workload_id", workload_id), ("client_id", client_id)):
        if value is None:
            continue
        problem = check_id(key, value)
        if problem is None and not value.strip():
            problem_text = "it is empty"
        elif problem is None and storable_text(value) != value:
            problem_text = "it is not valid Unicode text"
        elif problem is not None:
            problem_text = problem.describe()
        else:
            continue
        raise DataError(
            f"The {key} given for every record cannot be stored: {problem_text}. Give another one."
        )
