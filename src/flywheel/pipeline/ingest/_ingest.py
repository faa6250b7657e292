"""Ingestion entry points: JSONL files, in-memory objects (API, SDK) and any iterable of lines."""

from __future__ import annotations

import gzip
import io
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy import Engine

from flywheel.errors import DataError
from flywheel.pipeline.ingest._records import Rejection, prepare_record
from flywheel.pipeline.ingest._sink import IngestReport, RecordSink

#: Called with the number of input bytes consumed so far.
ProgressFn = Callable[[int], None]


def ingest_lines(
    engine: Engine,
    lines: Iterable[bytes],
    *,
    source: str,
    workload_id: str | None = None,
    client_id: str | None = None,
    on_progress: ProgressFn | None = None,
    batch_size: int = 10000,
) -> IngestReport:
    """Store every valid JSON line once and quarantine every bad one with its line number and reason.

    Blank lines are skipped (and not counted). Memory use is bounded by ``batch_size``.
    """
    with RecordSink(engine, source, batch_size=batch_size) as sink:
        consumed = 0
        index = 0
        now = time.time()
        loads = orjson.loads
        for line_number, line in enumerate(lines, start=1):
            consumed += len(line)
            if on_progress is not None and line_number % 4096 == 0:
                on_progress(consumed)
                now = time.time()
            stripped = line.strip()
            if not stripped:
                continue
            try:
                obj = loads(stripped)
            except orjson.JSONDecodeError as exc:
                text = stripped.decode("utf-8", "replace")
                sink.reject(index, Rejection("not valid JSON", str(exc)), text, line_number, now)
                index += 1
                continue
            try:
                text = stripped.decode("utf-8")
            except UnicodeDecodeError:  # orjson accepted it, so this cannot happen; keep the guard cheap
                text = stripped.decode("utf-8", "replace")
            result = prepare_record(obj, raw=text, workload_id=workload_id, client_id=client_id, now=now)
            if isinstance(result, Rejection):
                sink.reject(index, result, text, line_number, now)
            else:
                sink.add(result, now)
            index += 1
        if on_progress is not None:
            on_progress(consumed)
    return sink.report


def open_jsonl(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a ``.jsonl`` or ``.jsonl.gz`` file for binary reading (gzip detected by its magic bytes)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"Log file {str(p)!r} does not exist or is not a file.")
    raw = p.open("rb")
    magic = raw.peek(2)[:2] if isinstance(raw, io.BufferedReader) else b""
    if magic == b"\x1f\x8b":
        return gzip.open(raw, "rb")  # type: ignore[return-value]
    return raw


def ingest_file(
    engine: Engine,
    path: str | os.PathLike[str],
    *,
    workload_id: str | None = None,
    client_id: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    batch_size: int = 10000,
) -> IngestReport:
    """Stream a JSONL (or gzipped JSONL) file into the store.

    ``on_progress(done, total)`` reports compressed bytes read of the file's size.
    """
    p = Path(path)
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
        )


def ingest_objects(
    engine: Engine,
    items: Iterable[Any],
    *,
    source: str,
    workload_id: str | None = None,
    client_id: str | None = None,
    batch_size: int = 10000,
) -> IngestReport:
    """Store already-parsed records (API bodies, SDK batches), with the same validation as files."""
    with RecordSink(engine, source, batch_size=batch_size) as sink:
        now = time.time()
        for index, obj in enumerate(items):
            result = prepare_record(obj, workload_id=workload_id, client_id=client_id, now=now)
            if isinstance(result, Rejection):
                try:
                    text = orjson.dumps(obj, default=str).decode()
                except (TypeError, orjson.JSONEncodeError):
                    text = repr(obj)
                sink.reject(index, result, text, None, now)
            else:
                sink.add(result, now)
    return sink.report
