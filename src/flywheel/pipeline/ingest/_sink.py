"""Writing prepared records, quarantined items and ingestion counts to the store, in batches.

Insert-or-ignore on the record hash makes ingestion idempotent. Each dialect gets its fast path: ``executemany``
of ``INSERT OR IGNORE`` on SQLite; ``COPY`` into a temporary table and ``INSERT … ON CONFLICT DO NOTHING`` on
PostgreSQL. Each batch is its own transaction, so memory stays constant and a crash loses at most one batch.

Writes run on a background thread while the caller parses the next batch (both database drivers release the GIL
while the database works), with at most two batches in flight.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, insert, update

from flywheel.errors import StoreError
from flywheel.ids import new_id
from flywheel.pipeline.ingest._records import PreparedRecord, Rejection
from flywheel.store import ingestions, quarantined_records

#: Raw text kept for a quarantined item (characters).
RAW_LIMIT = 4000
#: Per-item errors kept in a report (the counts are always complete).
ERRORS_LIMIT = 1000

_COLUMNS = "record_hash, workload_id, client_id, timestamp, ingested_at, ingestion_id, data"


@dataclass
class ItemError:
    """A rejected line or item: where it was and why."""

    index: int
    reason: str
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "reason": self.reason, "detail": self.detail}


@dataclass
class IngestReport:
    """Counts of one ingestion. ``accepted + duplicates + quarantined`` equals the number of items seen."""

    ingestion_id: str
    source: str
    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    quarantine_reasons: Counter[str] = field(default_factory=Counter)
    errors: list[ItemError] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return self.accepted + self.duplicates + self.quarantined

    def as_dict(self) -> dict[str, Any]:
        return {
            "ingestion_id": self.ingestion_id,
            "source": self.source,
            "total": self.total,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
            "quarantine_reasons": dict(self.quarantine_reasons.most_common()),
            "errors": [e.as_dict() for e in self.errors],
            "seconds": round(self.seconds, 3),
        }


class RecordSink:
    """Buffers records and quarantined items and writes them in batches.

    Use as a context manager; the ingestion row is created on enter and finalised on exit (``failed`` with the
    error if an exception escapes, after flushing what was already accepted).
    """

    def __init__(self, engine: Engine, source: str, *, batch_size: int = 5000) -> None:
        self.engine = engine
        self.batch_size = batch_size
        self.report = IngestReport(ingestion_id=new_id(), source=source)
        self._records: dict[str, tuple[Any, ...]] = {}
        self._pending_dups = 0
        self._quarantine: list[dict[str, Any]] = []
        self._started = 0.0
        self._jobs: queue.Queue[tuple[list[tuple[Any, ...]], int, list[dict[str, Any]]] | None] = queue.Queue(
            2
        )
        self._writer: threading.Thread | None = None
        self._writer_error: BaseException | None = None
        self._dialect = engine.dialect.name
        if self._dialect not in ("sqlite", "postgresql"):
            raise StoreError(f"Unsupported database {self._dialect!r}; use SQLite or PostgreSQL.")

    # -- lifecycle -------------------------------------------------------------------------------------------

    def __enter__(self) -> RecordSink:
        self._started = time.time()
        with self.engine.begin() as conn:
            conn.execute(
                insert(ingestions).values(
                    id=self.report.ingestion_id,
                    source=self.report.source,
                    status="running",
                    started_at=self._started,
                    accepted=0,
                    duplicates=0,
                    quarantined=0,
                )
            )
        self._writer = threading.Thread(target=self._write_loop, name="flywheel-ingest-writer", daemon=True)
        self._writer.start()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        error = None
        try:
            self.flush()
            self._stop_writer()
        except Exception as flush_exc:  # keep the first error; the ingestion row must still be finalised
            error = f"{type(flush_exc).__name__}: {flush_exc}"
            if exc is None:
                raise
        finally:
            self._stop_writer()
            if exc is not None:
                error = f"{exc_type.__name__ if exc_type else 'Error'}: {exc}"
            self.report.seconds = time.time() - self._started
            with self.engine.begin() as conn:
                conn.execute(
                    update(ingestions)
                    .where(ingestions.c.id == self.report.ingestion_id)
                    .values(
                        status="failed" if error else "completed",
                        finished_at=time.time(),
                        accepted=self.report.accepted,
                        duplicates=self.report.duplicates,
                        quarantined=self.report.quarantined,
                        error=error,
                    )
                )

    # -- adding --------------------------------------------------------------------------------------------

    def add(self, record: PreparedRecord, now: float) -> None:
        if record.record_hash in self._records:
            self._pending_dups += 1
        else:
            self._records[record.record_hash] = (
                record.record_hash,
                record.workload_id,
                record.client_id,
                record.timestamp,
                now,
                self.report.ingestion_id,
                record.data,
            )
        if len(self._records) >= self.batch_size:
            self.flush()

    def reject(self, index: int, rejection: Rejection, raw: str, line_number: int | None, now: float) -> None:
        report = self.report
        report.quarantined += 1
        report.quarantine_reasons[rejection.reason] += 1
        if len(report.errors) < ERRORS_LIMIT:
            report.errors.append(ItemError(index, rejection.reason, rejection.detail))
        self._quarantine.append(
            {
                "ingestion_id": report.ingestion_id,
                "source": report.source,
                "line_number": line_number,
                "reason": rejection.describe(),
                "raw": raw[:RAW_LIMIT],
                "created_at": now,
            }
        )
        if len(self._quarantine) >= self.batch_size:
            self.flush()

    # -- writing ------------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Hand the buffered records and quarantined items to the writer thread."""
        self._raise_writer_error()
        rows = list(self._records.values())
        self._records.clear()
        dups, self._pending_dups = self._pending_dups, 0
        quarantine, self._quarantine = self._quarantine, []
        if rows or dups or quarantine:
            self._jobs.put((rows, dups, quarantine))

    def _raise_writer_error(self) -> None:
        if self._writer_error is not None:
            raise StoreError(f"Writing to the store failed: {self._writer_error}") from self._writer_error

    def _stop_writer(self) -> None:
        if self._writer is not None:
            self._jobs.put(None)
            self._writer.join()
            self._writer = None
            self._raise_writer_error()

    def _write_loop(self) -> None:
        raw = self.engine.raw_connection()
        if self._dialect == "sqlite":
            # Bulk-load settings for this connection only: a larger page cache keeps the record-hash index in
            # memory (inserts by content hash land at random places in it), and rarer WAL checkpoints batch the
            # copying back into the database file.
            cur = raw.cursor()
            cur.execute("PRAGMA cache_size=-131072")  # 128 MiB
            cur.execute("PRAGMA wal_autocheckpoint=20000")  # pages (~80 MB of WAL)
            cur.close()
        try:
            while (job := self._jobs.get()) is not None:
                if self._writer_error is not None:
                    continue  # drain so the producer never blocks; the error is raised on its side
                rows, dups, quarantine = job
                try:
                    inserted = self._write_records(raw, rows) if rows else 0
                    if quarantine:
                        with self.engine.begin() as conn:
                            conn.execute(insert(quarantined_records), quarantine)
                except BaseException as exc:
                    self._writer_error = exc
                    continue
                self.report.accepted += inserted
                self.report.duplicates += len(rows) - inserted + dups
        finally:
            raw.close()

    def _write_records(self, raw: Any, rows: list[tuple[Any, ...]]) -> int:
        cur = raw.cursor()
        try:
            if self._dialect == "sqlite":
                cur.executemany(
                    f"INSERT OR IGNORE INTO log_records ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", rows
                )
                inserted = cur.rowcount
            else:
                cur.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS _flywheel_stage (record_hash varchar(80), "
                    "workload_id varchar(255), client_id varchar(255), timestamp double precision, "
                    "ingested_at double precision, ingestion_id varchar(32), data text) ON COMMIT DELETE ROWS"
                )
                with cur.copy(f"COPY _flywheel_stage ({_COLUMNS}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                cur.execute(
                    f"INSERT INTO log_records ({_COLUMNS}) SELECT {_COLUMNS} FROM _flywheel_stage "
                    "ON CONFLICT (record_hash) DO NOTHING"
                )
                inserted = cur.rowcount
            raw.commit()
        except Exception:
            raw.rollback()
            raise
        finally:
            cur.close()
        return int(inserted)
