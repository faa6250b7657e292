"""Writing prepared records, quarantined items and ingestion counts to the store, in batches.

Insert-or-ignore on the record hash makes ingestion idempotent. Each dialect gets its fast path: ``executemany``
of ``INSERT OR IGNORE`` on SQLite; ``COPY`` into a temporary table and ``INSERT … ON CONFLICT DO NOTHING`` on
PostgreSQL. Each batch is its own transaction, so memory stays constant and a crash loses at most one batch.

Records reach the sink already checked against every store's limits (:mod:`flywheel.pipeline.ingest._limits`).
Should the store still refuse a batch because of its content, the batch is split in halves until the refused
records are isolated: they are quarantined with the store's reason and their neighbours are stored.

Quarantine is idempotent too: a row's ``raw_hash`` identifies the input within its source, so re-ingesting a bad
file adds no rows. And it is bounded: past ``max_quarantine_rows`` rejected items in one ingestion, the rest are
counted (in the report and in one summary row) rather than stored one by one.

Writes run on a background thread while the caller parses the next batch (both database drivers release the GIL
while the database works), with at most two batches in flight.
"""

from __future__ import annotations

import base64
import hashlib
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Engine, insert, update

from flywheel.errors import StoreError
from flywheel.ids import new_id
from flywheel.pipeline.ingest._limits import storable_text
from flywheel.pipeline.ingest._records import PreparedRecord, Rejection
from flywheel.store import ingestions, quarantined_records

#: Raw text kept for a quarantined item (characters).
RAW_LIMIT = 4000
#: Per-item errors kept in a report (the counts are always complete).
ERRORS_LIMIT = 1000
#: Quarantined items stored one by one per ingestion; past it they are counted in one summary row. A bad file
#: (the wrong format, the wrong encoding) then costs the store at most ~40 MB of raw text, not a copy of itself.
QUARANTINE_ROWS_LIMIT = 10_000
#: A batch is written once its records hold this much JSON text, even if it has fewer than ``batch_size``
#: records: two batches are in flight while a third is built, so this bounds memory for large records.
BATCH_BYTES = 64 * 1024 * 1024
#: The reason of the row that stands for the rejected items past ``max_quarantine_rows``.
NOT_KEPT_REASON = "not kept individually"
#: The reason of a record the store itself refused (which the checks before writing should make impossible).
STORE_REFUSED_REASON = "refused by the store"

_COLUMNS = "record_hash, workload_id, client_id, timestamp, ingested_at, ingestion_id, data"

#: Where a buffered record came from: (index of the item, line number in a file or None).
_Origin = tuple[int, int | None]
#: One batch for the writer: record rows, their origins, duplicates seen while buffering, quarantine rows.
_Job = tuple[list[tuple[Any, ...]], dict[str, _Origin], int, list[dict[str, Any]]]


def quarantine_key(source: str, raw: str) -> str:
    """Identity of a rejected input within its source (``q1:`` + 192 bits of SHA-256 over both, URL-safe base64):
    the same bad line or item from the same source is quarantined once however often it is ingested."""
    digest = hashlib.sha256(f"{source}\n{raw}".encode("utf-8", "surrogatepass")).digest()[:24]
    return f"q1:{base64.urlsafe_b64encode(digest).decode()}"


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
    """Counts of one ingestion. ``accepted + duplicates + quarantined`` equals the number of items seen.

    ``error`` is set when reading stopped early (a truncated or corrupt file): the counts then cover what was read
    before, and those records are stored.
    """

    ingestion_id: str
    source: str
    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    quarantine_reasons: Counter[str] = field(default_factory=Counter)
    errors: list[ItemError] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

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
            "errors": [e.as_dict() for e in sorted(self.errors, key=lambda e: e.index)],
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }


class RecordSink:
    """Buffers records and quarantined items and writes them in batches.

    Use as a context manager; the ingestion row is created on enter and finalised on exit (``failed`` with the
    error if an exception escapes or :meth:`stop` was called, after flushing what was already accepted).
    """

    def __init__(
        self,
        engine: Engine,
        source: str,
        *,
        batch_size: int = 5000,
        max_quarantine_rows: int = QUARANTINE_ROWS_LIMIT,
    ) -> None:
        self.engine = engine
        self.batch_size = batch_size
        self.max_quarantine_rows = max_quarantine_rows
        self.report = IngestReport(ingestion_id=new_id(), source=storable_text(source))
        self._records: dict[str, tuple[Any, ...]] = {}
        self._origins: dict[str, _Origin] = {}
        self._batch_bytes = 0
        self._pending_dups = 0
        self._quarantine: list[dict[str, Any]] = []
        self._kept = 0
        self._not_kept: Counter[str] = Counter()
        self._not_kept_span: list[_Origin] = []  # first and last
        # The writer thread adds store-refused records to the report while the caller adds rejected items.
        self._report_lock = threading.Lock()
        self._started = 0.0
        self._jobs: queue.Queue[_Job | None] = queue.Queue(2)
        self._writer: threading.Thread | None = None
        self._writer_error: BaseException | None = None
        self._dialect = engine.dialect.name
        if self._dialect not in ("sqlite", "postgresql"):
            raise StoreError(f"Unsupported database {self._dialect!r}; use SQLite or PostgreSQL.")
        dbapi = engine.dialect.dbapi
        # What a store raises for the content of a row (as opposed to a lost connection or a full disk): the
        # failed batch is then split to find the row. UnicodeEncodeError is a ValueError.
        self._row_errors: tuple[type[BaseException], ...] = (
            dbapi.DataError,  # type: ignore[union-attr]
            dbapi.IntegrityError,  # type: ignore[union-attr]
            ValueError,
        )

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
        error = self.report.error
        try:
            self._summarise_not_kept()
            self.flush()
            self._stop_writer()
        except Exception as flush_exc:  # keep the first error; the ingestion row must still be finalised
            error = f"{type(flush_exc).__name__}: {flush_exc}"
            if exc is None:
                raise
        finally:
            self._join_writer()  # its error, if any, is already the one reported
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
                        error=storable_text(error) if error else None,
                    )
                )

    def stop(self, error: str) -> None:
        """Record that the input ended early (``error`` says why); what was added so far is still written."""
        self.report.error = error

    # -- adding --------------------------------------------------------------------------------------------

    def add(
        self, record: PreparedRecord, now: float, index: int = -1, line_number: int | None = None
    ) -> None:
        """Buffer a valid record; ``index`` and ``line_number`` say where it came from, should the store refuse it."""
        key = record.record_hash
        if key in self._records:
            self._pending_dups += 1
        else:
            self._records[key] = (
                key,
                record.workload_id,
                record.client_id,
                record.timestamp,
                now,
                self.report.ingestion_id,
                record.data,
            )
            self._origins[key] = (index, line_number)
            self._batch_bytes += len(record.data)
            if len(self._records) >= self.batch_size or self._batch_bytes >= BATCH_BYTES:
                self.flush()

    def reject(self, index: int, rejection: Rejection, raw: str, line_number: int | None, now: float) -> None:
        """Count a rejected item and quarantine it (once per source and content; one by one up to the limit)."""
        self._count_rejection(index, rejection)
        if self._kept >= self.max_quarantine_rows:
            self._not_kept[rejection.reason] += 1
            origin = (index, line_number)
            if self._not_kept_span:
                self._not_kept_span[1] = origin
            else:
                self._not_kept_span += [origin, origin]
            return
        self._kept += 1
        self._quarantine.append(self._quarantine_row(rejection, raw, line_number, now))
        if len(self._quarantine) >= self.batch_size:
            self.flush()

    def _count_rejection(self, index: int, rejection: Rejection) -> None:
        report = self.report
        with self._report_lock:
            report.quarantined += 1
            report.quarantine_reasons[rejection.reason] += 1
            if len(report.errors) < ERRORS_LIMIT:
                report.errors.append(ItemError(index, rejection.reason, rejection.detail))

    def _quarantine_row(
        self, rejection: Rejection, raw: str, line_number: int | None, now: float
    ) -> dict[str, Any]:
        return {
            "ingestion_id": self.report.ingestion_id,
            "source": self.report.source,
            "line_number": line_number,
            "reason": storable_text(rejection.describe()),
            "raw": storable_text(raw[:RAW_LIMIT]),
            "raw_hash": quarantine_key(self.report.source, raw),
            "created_at": now,
        }

    def _summarise_not_kept(self) -> None:
        """One quarantine row for the rejected items past the limit: how many, why, and where they were."""
        if not self._not_kept:
            return
        (first_index, first_line), (last_index, last_line) = self._not_kept_span
        count = sum(self._not_kept.values())
        summary = {
            "not_kept": count,
            "reasons": dict(self._not_kept.most_common()),
            "first": {"index": first_index, "line_number": first_line},
            "last": {"index": last_index, "line_number": last_line},
        }
        rejection = Rejection(
            NOT_KEPT_REASON,
            f"{count} more rejected items past the limit of {self.max_quarantine_rows} rows per ingestion; "
            "they are counted by reason here",
        )
        self._quarantine.append(
            self._quarantine_row(rejection, orjson.dumps(summary).decode(), first_line, time.time())
        )
        self._not_kept.clear()

    # -- writing ------------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Hand the buffered records and quarantined items to the writer thread."""
        self._raise_writer_error()
        rows = list(self._records.values())
        origins, self._origins = self._origins, {}
        self._records.clear()
        self._batch_bytes = 0
        dups, self._pending_dups = self._pending_dups, 0
        quarantine, self._quarantine = self._quarantine, []
        if rows or dups or quarantine:
            self._jobs.put((rows, origins, dups, quarantine))

    def _raise_writer_error(self) -> None:
        if self._writer_error is not None:
            raise StoreError(f"Writing to the store failed: {self._writer_error}") from self._writer_error

    def _stop_writer(self) -> None:
        self._join_writer()
        self._raise_writer_error()

    def _join_writer(self) -> None:
        if self._writer is not None:
            self._jobs.put(None)
            self._writer.join()
            self._writer = None

    def _write_loop(self) -> None:
        try:
            raw = self._writer_connection()
        except BaseException as exc:
            # No connection (the store is down or refusing): the error is raised on the producer's side, and the
            # queue is drained so that the producer never blocks on it.
            self._writer_error = exc
            while self._jobs.get() is not None:
                pass
            return
        try:
            while (job := self._jobs.get()) is not None:
                if self._writer_error is not None:
                    continue  # drain so the producer never blocks; the error is raised on its side
                rows, origins, dups, quarantine = job
                try:
                    inserted, refused = self._store_records(raw, rows) if rows else (0, [])
                    quarantine += self._refused_rows(refused, origins)
                    if quarantine:
                        self._write_quarantine(quarantine)
                except BaseException as exc:
                    self._writer_error = exc
                    continue
                self.report.accepted += inserted
                self.report.duplicates += len(rows) - inserted - len(refused) + dups
        finally:
            raw.close()

    def _writer_connection(self) -> Any:
        raw = self.engine.raw_connection()
        if self._dialect == "sqlite":
            # Bulk-load settings for this connection only: a larger page cache keeps the record-hash index in
            # memory (inserts by content hash land at random places in it), and rarer WAL checkpoints batch the
            # copying back into the database file.
            try:
                cur = raw.cursor()
                cur.execute("PRAGMA cache_size=-131072")  # 128 MiB
                cur.execute("PRAGMA wal_autocheckpoint=20000")  # pages (~80 MB of WAL)
                cur.close()
            except BaseException:
                raw.close()
                raise
        return raw

    def _store_records(
        self, raw: Any, rows: list[tuple[Any, ...]]
    ) -> tuple[int, list[tuple[tuple[Any, ...], str]]]:
        """Write ``rows``; returns (records inserted, [(row, reason)] the store refused for their content).

        A refused batch is split in halves until each refused row is alone, so k bad rows among n cost about
        ``2·k·log2(n)`` extra writes, and none when every row is fine.
        """
        try:
            return self._write_records(raw, rows), []
        except self._row_errors as exc:
            if len(rows) == 1:
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                return 0, [(rows[0], message)]
        middle = len(rows) // 2
        first, first_refused = self._store_records(raw, rows[:middle])
        second, second_refused = self._store_records(raw, rows[middle:])
        return first + second, first_refused + second_refused

    def _refused_rows(
        self, refused: list[tuple[tuple[Any, ...], str]], origins: dict[str, _Origin]
    ) -> list[dict[str, Any]]:
        """Count each refused record as quarantined and return its quarantine rows."""
        rows = []
        for row, message in refused:
            index, line_number = origins.get(row[0], (-1, None))
            rejection = Rejection(STORE_REFUSED_REASON, message)
            self._count_rejection(index, rejection)
            rows.append(self._quarantine_row(rejection, row[6], line_number, row[4]))
        return rows

    def _write_quarantine(self, rows: list[dict[str, Any]]) -> None:
        from sqlalchemy.dialects import postgresql, sqlite  # here: only needed once something is quarantined

        dialect = postgresql if self._dialect == "postgresql" else sqlite
        statement = dialect.insert(quarantined_records).on_conflict_do_nothing(index_elements=["raw_hash"])
        with self.engine.begin() as conn:
            conn.execute(statement, rows)

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
