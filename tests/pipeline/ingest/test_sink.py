"""The batched writer on a real store: a batch the store refuses loses only the refused records."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import func, select, text

from factories import chat_record
from flywheel.errors import StoreError
from flywheel.pipeline.ingest import PreparedRecord, RecordSink, prepare_record
from flywheel.store import ingestions, log_records, open_store, quarantined_records

NOW = 1_800_000_000.0


def _valid(i: int) -> PreparedRecord:
    record = prepare_record(chat_record(f"q{i}", timestamp=i), now=NOW)
    assert isinstance(record, PreparedRecord)
    return record


def _unstorable(i: int, *, postgres: bool) -> PreparedRecord:
    """A record that skipped the checks and that the store refuses: text UTF-8 cannot encode (refused by both
    drivers), or on PostgreSQL an id wider than its column."""
    record = _valid(10_000 + i)
    if postgres and i % 2:
        return PreparedRecord(record.record_hash, "w" * 300, "c", 1.0, record.data)
    return PreparedRecord(record.record_hash, "w", "c", 1.0, record.data[:-1] + ',"x":"\ud800"}')


def test_a_refused_batch_is_split_until_the_refused_records_are_alone(store_url: str) -> None:
    engine = open_store(store_url)
    postgres = store_url.startswith("postgresql")
    with RecordSink(engine, "test", batch_size=64) as sink:
        for i in range(200):
            sink.add(_valid(i), NOW)
            if i in (3, 77, 78, 150):
                sink.add(_unstorable(i, postgres=postgres), NOW)
    report = sink.report
    assert (report.accepted, report.duplicates, report.quarantined) == (200, 0, 4)
    assert dict(report.quarantine_reasons) == {"refused by the store": 4}
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(log_records)) == 200
        reasons = list(conn.scalars(select(quarantined_records.c.reason)))
        assert conn.scalar(select(ingestions.c.status)) == "completed"
    assert len(reasons) == 4 and all(r.startswith("refused by the store: ") for r in reasons)
    if postgres:
        assert any("value too long" in r for r in reasons)
    engine.dispose()


def test_a_store_failure_that_is_not_about_a_record_fails_the_ingestion(store_url: str) -> None:
    """Only errors about a row's content are isolated; a missing table must not quarantine every record."""
    engine = open_store(store_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE log_records"))
    with pytest.raises(StoreError), RecordSink(engine, "test", batch_size=10) as sink:
        for i in range(30):
            sink.add(_valid(i), NOW)
    assert sink.report.quarantined == 0
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(quarantined_records)) == 0
        assert conn.scalar(select(ingestions.c.status)) == "failed"
    engine.dispose()


@pytest.mark.parametrize("batches", [1, 20])
def test_a_writer_that_cannot_get_a_connection_fails_the_ingestion_instead_of_storing_nothing_silently(
    store_url: str, monkeypatch: pytest.MonkeyPatch, batches: int
) -> None:
    """The store refuses the writer thread's connection (a restart, a full pool) while the ingestion's own row
    is written fine: the ingestion must raise, not report 0 accepted as a success (a caller such as the gateway
    would then drop the batch), nor block the producer behind a writer that is gone."""
    engine = open_store(store_url)
    real = engine.raw_connection

    def refused_in_the_writer() -> Any:
        if threading.current_thread().name == "flywheel-ingest-writer":
            raise ConnectionError("connection refused")
        return real()

    monkeypatch.setattr(engine, "raw_connection", refused_in_the_writer)
    outcome: list[BaseException | None] = []

    def ingest() -> None:
        try:
            with RecordSink(engine, "test", batch_size=10) as sink:
                for i in range(10 * batches):
                    sink.add(_valid(i), NOW)
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    worker = threading.Thread(target=ingest, daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "the producer blocked behind a dead writer"
    assert isinstance(outcome[0], StoreError) and "connection refused" in str(outcome[0])
    with engine.connect() as conn:
        assert conn.scalar(select(ingestions.c.status)) == "failed"
    engine.dispose()
