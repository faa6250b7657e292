"""The batched writer on a real store: a batch the store refuses loses only the refused records."""

from __future__ import annotations

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
