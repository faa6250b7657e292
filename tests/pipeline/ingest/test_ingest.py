"""Ingestion into a real store (SQLite and PostgreSQL): every valid line once, every bad line quarantined."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson
from sqlalchemy import func, select

from factories import chat_record
from flywheel.pipeline.ingest import ingest_file, ingest_objects
from flywheel.store import ingestions, log_records, open_store, quarantined_records


def _mixed_file(path: Path) -> dict[str, int]:
    """Write valid, duplicate, blank and broken lines; return the expected counts."""
    lines = [
        json.dumps(chat_record("q1", timestamp=1)),
        json.dumps(chat_record("q2", timestamp=2)),
        "{not json",
        "",
        json.dumps(chat_record("q1", timestamp=1)),  # duplicate of line 1
        json.dumps([1, 2, 3]),  # not an object
        json.dumps({**chat_record("q3"), "request": {"messages": []}}),
        "   ",
        json.dumps({k: v for k, v in chat_record("q4").items() if k != "workload_id"}),
        json.dumps(chat_record("q5", timestamp="2025-01-01T00:00:00Z")),
        json.dumps({**chat_record("q6"), "response": {"choices": [{}]}}),
        json.dumps(chat_record("q2", timestamp=2)),  # duplicate of line 2
    ]
    path.write_text("\n".join(lines) + "\n")
    return {"accepted": 3, "duplicates": 2, "quarantined": 5, "non_blank": 10}


def test_mixed_file_counts_add_up_and_nothing_is_lost(store_url: str, tmp_path: Path) -> None:
    engine = open_store(store_url)
    path = tmp_path / "logs.jsonl"
    expected = _mixed_file(path)
    report = ingest_file(engine, path)
    assert (report.accepted, report.duplicates, report.quarantined) == (
        expected["accepted"],
        expected["duplicates"],
        expected["quarantined"],
    )
    assert report.total == expected["non_blank"]
    assert dict(report.quarantine_reasons) == {
        "not valid JSON": 1,
        "not a JSON object": 1,
        "missing or empty request.messages": 1,
        "missing workload_id": 1,
        "response choice without message": 1,
    }
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(log_records)) == 3
        rows = conn.execute(
            select(
                quarantined_records.c.line_number, quarantined_records.c.reason, quarantined_records.c.raw
            ).order_by(quarantined_records.c.line_number)
        ).all()
        assert [r.line_number for r in rows] == [3, 6, 7, 9, 11]
        assert rows[0].raw == "{not json" and rows[0].reason.startswith("not valid JSON")
        ingestion = conn.execute(select(ingestions)).one()
        assert (ingestion.status, ingestion.accepted, ingestion.quarantined) == ("completed", 3, 5)
    engine.dispose()


def test_reingesting_the_same_file_is_a_no_op(store_url: str, tmp_path: Path) -> None:
    engine = open_store(store_url)
    path = tmp_path / "logs.jsonl"
    path.write_text("\n".join(json.dumps(chat_record(f"q{i}", timestamp=i)) for i in range(50)))
    first = ingest_file(engine, path, batch_size=7)
    second = ingest_file(engine, path, batch_size=7)
    assert (first.accepted, first.duplicates) == (50, 0)
    assert (second.accepted, second.duplicates) == (0, 50)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(log_records)) == 50
    engine.dispose()


def test_stored_record_is_the_logged_record_with_extra_fields(store_url: str, tmp_path: Path) -> None:
    engine = open_store(store_url)
    record = chat_record("hello", timestamp=1_760_000_000_500, trace_id="t-9")
    path = tmp_path / "one.jsonl"
    path.write_bytes(orjson.dumps(record))
    ingest_file(engine, path)
    with engine.connect() as conn:
        row = conn.execute(select(log_records)).one()
    assert orjson.loads(row.data) == record
    assert row.timestamp == 1_760_000_000.5
    assert (row.workload_id, row.client_id) == ("wl", "client")
    engine.dispose()


def test_gzipped_jsonl_is_read(sqlite_url: str, tmp_path: Path) -> None:
    engine = open_store(sqlite_url)
    path = tmp_path / "logs.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        for i in range(20):
            fh.write(json.dumps(chat_record(f"q{i}", timestamp=i)) + "\n")
    report = ingest_file(engine, path)
    assert report.accepted == 20
    engine.dispose()


def test_loader_format_file_with_ids(sqlite_url: str, tmp_path: Path) -> None:
    engine = open_store(sqlite_url)
    path = tmp_path / "loader.jsonl"
    lines = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
        for i in range(4)
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines))
    report = ingest_file(engine, path, workload_id="w", client_id="c")
    assert report.accepted == 4
    with engine.connect() as conn:
        assert set(conn.scalars(select(log_records.c.workload_id))) == {"w"}
    engine.dispose()


def test_objects_get_per_item_errors(sqlite_url: str) -> None:
    engine = open_store(sqlite_url)
    report = ingest_objects(engine, [chat_record("a"), {"nope": 1}, chat_record("a"), "text"], source="api")
    assert (report.accepted, report.duplicates, report.quarantined) == (1, 1, 2)
    assert [(e.index, e.reason) for e in report.errors] == [
        (1, "missing workload_id"),
        (3, "not a JSON object"),
    ]
    engine.dispose()
