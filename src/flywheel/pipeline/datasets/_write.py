"""The streaming passes in one or more processes.

First pass (:func:`scan_parallel`): each worker validates one contiguous range of the newest-first stream (resumed
at a ``(timestamp, id)`` anchor) and returns compact facts, merged in order. Second pass (:func:`write_datasets`):
each worker re-reads its range, masks, formats and writes its own part files, concatenated in order. The output is
identical whatever the number of workers.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
from sqlalchemy import Engine, func, select

from flywheel.errors import DataError
from flywheel.pipeline.curate import (
    Scan,
    mask_record,
    merge_scans,
    parse_arguments,
    row_timestamp,
    scan_records,
    selection_query,
    stream_records,
)
from flywheel.pipeline.datasets._format import to_eval_record, to_training_example
from flywheel.pipeline.datasets._manifest import Artifact

EVAL, TRAIN, VAL = 0, 1, 2
SPLITS = ("eval", "train", "val")


class Writer:
    """A JSONL file with a running SHA-256 and record count."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._sha = hashlib.sha256()
        self._buffer: list[bytes] = []
        self.count = 0

    def write(self, obj: Any) -> None:
        """Append one record."""
        self._buffer.append(orjson.dumps(obj))
        self.count += 1
        if len(self._buffer) >= 4096:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            chunk = b"\n".join(self._buffer) + b"\n"
            self._sha.update(chunk)
            self._fh.write(chunk)
            self._buffer.clear()

    def close(self) -> Artifact:
        """Flush and close; return ``{"path", "records", "sha256"}``."""
        self._flush()
        self._fh.close()
        return {"path": str(self.path), "records": self.count, "sha256": self._sha.hexdigest()}


@dataclass
class RangeJob:
    """One contiguous range ``[start, end)`` of stream positions to write (picklable)."""

    workload_id: str
    client_id: str
    since: float | None
    until: float | None
    max_row_id: int | None
    start: int
    start_at: tuple[float, int] | None
    row_ids: list[int]
    codes: np.ndarray
    pool_positions: set[int]
    parse_arguments: bool
    mask: bool
    workload_type: str
    part_paths: dict[str, Path]


@dataclass
class RangeResult:
    """What one range produced."""

    eval_records: list[dict[str, Any]] = field(default_factory=list)
    pool: list[dict[str, Any]] = field(default_factory=list)
    masked: Counter[str] = field(default_factory=Counter)
    parts: dict[str, Artifact] = field(default_factory=dict)


def _changed(job: RangeJob) -> DataError:
    return DataError(
        f"The logs of workload {job.workload_id!r} / client {job.client_id!r} changed while the datasets were being "
        "built (records deleted or re-timestamped); run the build again."
    )


def write_range(engine: Engine, job: RangeJob) -> RangeResult:
    """Stream the range, check it is the same rows as in the first pass, and write its part files."""
    out = RangeResult()
    writers = {name: Writer(path) for name, path in job.part_paths.items()}
    try:
        rows = stream_records(
            engine,
            job.workload_id,
            job.client_id,
            since=job.since,
            until=job.until,
            max_row_id=job.max_row_id,
            limit=len(job.row_ids),
            start_at=job.start_at,
        )
        seen = 0
        # Locals, and Python ints rather than numpy scalars: this loop runs once per streamed row.
        row_ids, codes = job.row_ids, job.codes.tolist()
        parse, mask, workload_type = job.parse_arguments, job.mask, job.workload_type
        start, pool_positions = job.start, job.pool_positions
        eval_writer, train_writer, val_writer = writers["eval"], writers["train"], writers["val"]
        for offset, (row_id, data) in enumerate(rows):
            seen += 1
            if row_id != row_ids[offset]:
                raise _changed(job)
            which = codes[offset]
            if which < 0:
                continue
            record = orjson.loads(data)  # validated in the first pass; only argument parsing is redone
            if parse:
                record = parse_arguments(record)
            if mask:
                record = mask_record(record, out.masked)
            if which == EVAL:
                eval_record = to_eval_record(record)
                out.eval_records.append(eval_record)
                eval_writer.write(eval_record)
            else:
                (train_writer if which == TRAIN else val_writer).write(
                    to_training_example(record, workload_type)
                )
                if start + offset in pool_positions:
                    out.pool.append(record)
        rows.close()
        if seen != len(job.row_ids):
            raise _changed(job)
    finally:
        out.parts = {name: w.close() for name, w in writers.items()}
    return out


_WORKER_ENGINE: Engine | None = None


def _init_worker(engine: Engine) -> None:
    # A forked child must not reuse the parent's pooled connections; dispose(close=False) drops them safely.
    global _WORKER_ENGINE
    engine.dispose(close=False)
    _WORKER_ENGINE = engine


def _run_in_worker(job: RangeJob) -> RangeResult:
    assert _WORKER_ENGINE is not None
    return write_range(_WORKER_ENGINE, job)


def _concat(parts: list[Artifact], target: Path) -> Artifact:
    target.parent.mkdir(parents=True, exist_ok=True)
    if len(parts) == 1:
        os.replace(parts[0]["path"], target)
        return {**parts[0], "path": str(target)}
    sha = hashlib.sha256()
    with open(target, "wb") as out:
        for part in parts:
            with open(part["path"], "rb") as fh:
                while chunk := fh.read(1 << 20):
                    sha.update(chunk)
                    out.write(chunk)
            os.unlink(part["path"])
    return {"path": str(target), "records": sum(p["records"] for p in parts), "sha256": sha.hexdigest()}


def choose_workers(engine: Engine, requested: int | None) -> int:
    """Processes for the streaming passes: ``requested`` (default 1), or 1 where forking cannot share the database
    (an in-memory SQLite database, a platform without ``fork``)."""
    forkable = "fork" in multiprocessing.get_all_start_methods()
    database = engine.url.database
    shareable = engine.dialect.name != "sqlite" or bool(database and database != ":memory:")
    if not (forkable and shareable) or requested is None:
        return 1
    return max(1, requested)


def write_datasets(
    engine: Engine,
    *,
    workload_id: str,
    client_id: str,
    since: float | None,
    until: float | None,
    row_ids: list[int],
    codes: np.ndarray,
    pool_positions: set[int],
    parse_arguments: bool,
    mask: bool,
    workload_type: str,
    targets: dict[str, Path],
    workers: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Counter[str], dict[str, Artifact]]:
    """Write eval / train / val; return ``(eval_records, icl_pool, masked_counts, artifacts)``."""
    total = len(row_ids)
    workers = max(1, min(workers, total))
    bounds = [round(total * w / workers) for w in range(workers + 1)]
    max_row_id = max(row_ids) if row_ids else None
    jobs = []
    for w in range(workers):
        start, end = bounds[w], bounds[w + 1]
        start_at = (row_timestamp(engine, row_ids[start]), row_ids[start]) if start > 0 else None
        jobs.append(
            RangeJob(
                workload_id=workload_id,
                client_id=client_id,
                since=since,
                until=until,
                max_row_id=max_row_id,
                start=start,
                start_at=start_at,
                row_ids=row_ids[start:end],
                codes=codes[start:end],
                pool_positions={p for p in pool_positions if start <= p < end},
                parse_arguments=parse_arguments,
                mask=mask,
                workload_type=workload_type,
                part_paths={
                    name: targets[name].with_name(f".{targets[name].name}.part{w}") for name in SPLITS
                },
            )
        )
    if workers == 1:
        results = [write_range(engine, jobs[0])]
    else:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(engine,)
        ) as pool:
            results = list(pool.map(_run_in_worker, jobs))
    eval_records = [r for res in results for r in res.eval_records]
    icl_pool = [r for res in results for r in res.pool]
    masked: Counter[str] = Counter()
    for res in results:
        masked.update(res.masked)
    artifacts = {name: _concat([res.parts[name] for res in results], targets[name]) for name in SPLITS}
    return eval_records, icl_pool, masked, artifacts


def remove_parts(targets: dict[str, Path]) -> None:
    """Delete leftover part files after a failed write."""
    for target in targets.values():
        for part in target.parent.glob(f".{target.name}.part*"):
            part.unlink(missing_ok=True)


@dataclass
class ScanJob:
    """One contiguous range of the stream for the first pass (picklable)."""

    workload_id: str
    client_id: str
    since: float | None
    until: float | None
    max_row_id: int | None
    start_at: tuple[float, int] | None
    count: int
    max_tool_properties: int
    parse_arguments: bool
    keep_text: bool


def scan_range(engine: Engine, job: ScanJob) -> Scan:
    """Validate one range of the stream and keep compact facts (positions numbered from the range start)."""
    rows = stream_records(
        engine,
        job.workload_id,
        job.client_id,
        since=job.since,
        until=job.until,
        max_row_id=job.max_row_id,
        limit=job.count,
        start_at=job.start_at,
    )
    try:
        return scan_records(
            rows,
            max_tool_properties=job.max_tool_properties,
            parse_arguments=job.parse_arguments,
            keep_text=job.keep_text,
        )
    finally:
        rows.close()


def _scan_in_worker(job: ScanJob) -> Scan:
    assert _WORKER_ENGINE is not None
    return scan_range(_WORKER_ENGINE, job)


def scan_parallel(
    engine: Engine,
    *,
    workload_id: str,
    client_id: str,
    since: float | None,
    until: float | None,
    workers: int,
    max_tool_properties: int,
    parse_arguments: bool,
    keep_text: bool,
) -> Scan:
    """The first pass over all matching records (no limit) in ``workers`` processes, merged in stream order.

    Rows added while this runs are ignored (ids above the maximum seen at the start).
    """
    base = selection_query(workload_id, client_id, since=since, until=until).subquery()
    with engine.connect() as conn:
        total, max_row_id = conn.execute(select(func.count(), func.max(base.c.id))).one()
        total = int(total)
        anchors: list[tuple[float, int] | None] = [None]
        bounds = [round(total * w / workers) for w in range(workers + 1)]
        for start in bounds[1:-1]:
            stmt = selection_query(workload_id, client_id, since=since, until=until, max_row_id=max_row_id)
            row_id = conn.execute(stmt.offset(start).limit(1)).one()[0]
            anchors.append((row_timestamp(engine, row_id), int(row_id)))
    jobs = [
        ScanJob(
            workload_id=workload_id,
            client_id=client_id,
            since=since,
            until=until,
            max_row_id=max_row_id,
            start_at=anchors[w],
            count=bounds[w + 1] - bounds[w],
            max_tool_properties=max_tool_properties,
            parse_arguments=parse_arguments,
            keep_text=keep_text,
        )
        for w in range(workers)
    ]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(engine,)
    ) as pool:
        scans = list(pool.map(_scan_in_worker, jobs))
    return merge_scans(scans)
