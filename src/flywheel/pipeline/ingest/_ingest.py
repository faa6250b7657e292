"""Ingestion entry points: JSONL files, in-memory objects (API, SDK) and any iterable of lines."""

from __future__ import annotations

import gzip
import io
import json
import os
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy import Engine

from flywheel.errors import DataError
from flywheel.pipeline.ingest._limits import MAX_RECORD_BYTES, check_overrides, too_large
from flywheel.pipeline.ingest._records import Rejection, prepare_record
from flywheel.pipeline.ingest._sink import QUARANTINE_ROWS_LIMIT, RAW_LIMIT, IngestReport, RecordSink

#: Called with the number of input bytes consumed so far.
ProgressFn = Callable[[int], None]

_UTF8_BOM = b"\xef\xbb\xbf"
#: What reading a file can raise part-way: a truncated gzip (EOFError), a corrupt one (BadGzipFile is an OSError,
#: zlib.error), a failing disk.
_READ_ERRORS = (EOFError, OSError, zlib.error)
#: Reason of a line that is not UTF-8 (counted apart from other unparsable lines, so the CLI can hint at iconv).
NOT_UTF8_REASON = "not UTF-8 text"


def ingest_lines(
    engine: Engine,
    lines: Iterable[bytes],
    *,
    source: str,
    workload_id: str | None = None,
    client_id: str | None = None,
    on_progress: ProgressFn | None = None,
    batch_size: int = 10000,
    max_quarantine_rows: int = QUARANTINE_ROWS_LIMIT,
) -> IngestReport:
    """Store every valid JSON line once and quarantine every bad one with its line number and reason.

    Blank lines are skipped (and not counted); a UTF-8 byte-order mark before a line is ignored. Memory use is
    bounded by ``batch_size``. Should reading fail part-way (a truncated gzip file), the lines read before are
    ingested and the report's ``error`` says where and why reading stopped.
    """
    check_overrides(workload_id, client_id)
    with RecordSink(engine, source, batch_size=batch_size, max_quarantine_rows=max_quarantine_rows) as sink:
        consumed = 0
        index = 0
        line_number = 0
        now = time.time()
        loads = orjson.loads
        try:
            for line_number, line in enumerate(lines, start=1):
                consumed += len(line)
                if on_progress is not None and line_number % 4096 == 0:
                    on_progress(consumed)
                    now = time.time()
                stripped = line.strip()
                if not stripped:
                    continue
                if len(stripped) > MAX_RECORD_BYTES:
                    sink.reject(index, too_large(len(stripped)), _line_text(stripped), line_number, now)
                    index += 1
                    continue
                try:
                    obj = loads(stripped)
                except orjson.JSONDecodeError as exc:
                    parsed = _parse_again(stripped, exc)
                    if parsed is None:  # nothing but a byte-order mark: a blank line
                        continue
                    if isinstance(parsed, Rejection):
                        sink.reject(index, parsed, _line_text(stripped), line_number, now)
                        index += 1
                        continue
                    obj, stripped = parsed
                text = stripped.decode("utf-8")  # orjson accepted it, so it is UTF-8
                result = prepare_record(obj, raw=text, workload_id=workload_id, client_id=client_id, now=now)
                if isinstance(result, Rejection):
                    sink.reject(index, result, text, line_number, now)
                else:
                    sink.add(result, now, index, line_number)
                index += 1
        except _READ_ERRORS as exc:
            sink.stop(_read_error(exc, line_number))
        if on_progress is not None:
            on_progress(consumed)
    return sink.report


def _parse_again(line: bytes, exc: orjson.JSONDecodeError) -> tuple[Any, bytes] | Rejection | None:
    """A line the JSON parser refused: parsed without its UTF-8 byte-order mark if it has one (an editor's, or
    where files were concatenated; None if nothing else is left), else why it is not JSON. Off the hot path: only
    failed lines come here."""
    if line.startswith(_UTF8_BOM):
        line = line[len(_UTF8_BOM) :].strip()
        if not line:
            return None
        try:
            return orjson.loads(line), line
        except orjson.JSONDecodeError as after_bom:
            exc = after_bom
    return _unparsable(line, exc)


def _line_text(line: bytes) -> str:
    return line.decode("utf-8", "replace")


def _unparsable(line: bytes, exc: orjson.JSONDecodeError) -> Rejection:
    """Why a line is not JSON, telling an encoding problem (which needs the file converted) from broken JSON."""
    if b"\x00" in line:
        return Rejection(
            NOT_UTF8_REASON,
            "the line holds NUL bytes, as UTF-16 or UTF-32 text does; convert the file to UTF-8 "
            "(e.g. iconv -f UTF-16 -t UTF-8 FILE > FILE.utf8.jsonl)",
        )
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        return Rejection(
            NOT_UTF8_REASON,
            f"byte 0x{line[bad.start]:02x} at position {bad.start} is not UTF-8; convert the file to UTF-8 "
            "(e.g. iconv -f WINDOWS-1252 -t UTF-8 FILE > FILE.utf8.jsonl if it was written on Windows)",
        )
    return Rejection("not valid JSON", str(exc))


def _read_error(exc: BaseException, line_number: int) -> str:
    if isinstance(exc, EOFError):
        what = "the gzip file is truncated (it ends before its end-of-stream marker)"
    elif isinstance(exc, gzip.BadGzipFile | zlib.error):
        what = f"the gzip data is corrupt ({exc})"
    else:
        what = f"reading the file failed ({exc})"
    return (
        f"Reading stopped after line {line_number}: {what}. The lines before it were ingested; "
        "re-copy or re-create the file and ingest it again (stored records are then skipped as duplicates)."
    )


def open_jsonl(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a ``.jsonl`` or ``.jsonl.gz`` file for binary reading (gzip detected by its magic bytes).

    Raises DataError for a file that is UTF-16 or UTF-32 text, saying how to convert it to UTF-8.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"Log file {str(p)!r} does not exist or is not a file.")
    with p.open("rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    # Opened by path, so that closing the returned file closes the file descriptor too.
    fh: gzip.GzipFile | io.BufferedReader = gzip.open(p, "rb") if gzipped else p.open("rb")  # noqa: SIM115
    try:
        head = fh.peek(4)[:4]
    except _READ_ERRORS:
        head = b""  # a broken gzip file: reading it reports why, with what could be read
    encoding = _wide_encoding(head)
    if encoding is not None:
        fh.close()
        iconv = f"iconv -f {encoding} -t UTF-8"
        convert = f"gunzip -c {p} | {iconv}" if gzipped else f"{iconv} {p}"
        raise DataError(
            f"Log file {str(p)!r} is {encoding} text; flywheel reads UTF-8 JSONL. "
            f"Convert it first, e.g. `{convert} > logs.jsonl`, then ingest logs.jsonl."
        )
    return fh  # type: ignore[return-value]  # both are binary files; typeshed does not say IO[bytes]


def _wide_encoding(head: bytes) -> str | None:
    """``UTF-16``/``UTF-32`` when the first bytes of a file are such text (by byte-order mark, or by the zero bytes
    of ASCII characters such as ``{"``), else None."""
    if head in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"):
        return "UTF-32"
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "UTF-16"
    if len(head) == 4:
        if head[0] and not head[1] and not head[2] and not head[3]:
            return "UTF-32"
        if not head[0] and not head[1] and not head[2] and head[3]:
            return "UTF-32"
        if (head[0] and not head[1] and head[2] and not head[3]) or (
            not head[0] and head[1] and not head[2] and head[3]
        ):
            return "UTF-16"
    return None


def ingest_file(
    engine: Engine,
    path: str | os.PathLike[str],
    *,
    workload_id: str | None = None,
    client_id: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    batch_size: int = 10000,
    max_quarantine_rows: int = QUARANTINE_ROWS_LIMIT,
) -> IngestReport:
    """Stream a JSONL (or gzipped JSONL) file into the store.

    ``on_progress(done, total)`` reports compressed bytes read of the file's size. A truncated or corrupt gzip
    file is ingested up to where it breaks; the report's ``error`` says so.
    """
    p = Path(path)
    check_overrides(workload_id, client_id)
    with open_jsonl(p) as fh:
        total = p.stat().st_size
        underlying = getattr(fh, "fileobj", None) or fh

        def progress(_consumed: int) -> None:
            if on_progress is not None:
                on_progress(underlying.tell(), total)

        return ingest_lines(
            engine,
            fh,
            source=f"file:{p}",
            workload_id=workload_id,
            client_id=client_id,
            on_progress=progress if on_progress is not None else None,
            batch_size=batch_size,
            max_quarantine_rows=max_quarantine_rows,
        )


def ingest_objects(
    engine: Engine,
    items: Iterable[Any],
    *,
    source: str,
    workload_id: str | None = None,
    client_id: str | None = None,
    batch_size: int = 10000,
    max_quarantine_rows: int = QUARANTINE_ROWS_LIMIT,
) -> IngestReport:
    """Store already-parsed records (API bodies, SDK batches), with the same validation as files."""
    check_overrides(workload_id, client_id)
    with RecordSink(engine, source, batch_size=batch_size, max_quarantine_rows=max_quarantine_rows) as sink:
        now = time.time()
        for index, obj in enumerate(items):
            result = prepare_record(obj, workload_id=workload_id, client_id=client_id, now=now)
            if isinstance(result, Rejection):
                sink.reject(index, result, item_text(obj), None, now)
            else:
                sink.add(result, now, index)
    return sink.report


def item_text(obj: Any) -> str:
    """An item as JSON text, for quarantine. Never raises: an item orjson cannot write (nested too deeply, or
    holding non-JSON values from the SDK) is written by :func:`_json_preview`, up to what quarantine keeps."""
    try:
        return orjson.dumps(obj, default=str).decode()
    except TypeError:
        return _json_preview(obj, RAW_LIMIT)


_END = object()


def _json_preview(obj: Any, limit: int) -> str:
    """The first ``limit`` characters of ``obj`` as JSON, at any depth (no recursion); values JSON has no form
    for are written as their ``repr``."""
    parts: list[str] = []
    size = 0
    # Open containers, innermost last: (their remaining children, is an object, closing bracket, first child).
    open_: list[tuple[Iterator[Any], bool, str, list[bool]]] = []
    value = obj
    while True:
        if isinstance(value, dict):
            token = "{"
            open_.append((iter(value.items()), True, "}", [True]))
        elif isinstance(value, list | tuple):
            token = "["
            open_.append((iter(value), False, "]", [True]))
        else:
            token = _json_scalar(value)
        parts.append(token)
        size += len(token)
        while True:  # find the next value to write, closing finished containers
            if size >= limit or not open_:
                return "".join(parts)[:limit]
            children, is_object, closer, first = open_[-1]
            child: Any = next(children, _END)
            if child is _END:
                open_.pop()
                parts.append(closer)
                size += 1
                continue
            separator = "" if first[0] else ","
            first[0] = False
            if is_object:
                key, child = child
                separator += _json_scalar(str(key)) + ":"
            parts.append(separator)
            size += len(separator)
            value = child
            break


def _json_scalar(value: Any) -> str:
    if isinstance(value, str | int | float | bool) or value is None:
        return json.dumps(value)  # escapes lone surrogates, writes any integer
    return json.dumps(repr(value))
