"""Ingestion into a real store (SQLite and PostgreSQL): every valid line once, every bad line quarantined."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select

from factories import chat_record
from flywheel.errors import DataError
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


# -- a bad record never costs its valid neighbours ----------------------------------------------------------------


def _deep_line(levels: int) -> bytes:
    """A valid record whose ``extra`` field holds ``levels`` nested arrays (the record itself is one level more)."""
    record = orjson.dumps(chat_record("deep"))
    return record[:-1] + b',"extra":' + b"[" * levels + b"]" * levels + b"}"


def _reasons(engine) -> list[tuple[int | None, str]]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        rows = conn.execute(
            select(quarantined_records.c.line_number, quarantined_records.c.reason).order_by(
                quarantined_records.c.id
            )
        ).all()
    return [(r.line_number, r.reason) for r in rows]


def _stored(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(log_records)) or 0)


@pytest.mark.parametrize("levels", [254, 600, 1023])
def test_a_deeply_nested_line_is_quarantined_and_the_rest_of_the_file_is_read(
    store_url: str, tmp_path: Path, levels: int
) -> None:
    engine = open_store(store_url)
    path = tmp_path / "logs.jsonl"
    lines = [orjson.dumps(chat_record(f"q{i}", timestamp=i)) for i in range(3)]
    lines.insert(1, _deep_line(levels))  # valid JSON (orjson reads up to 1024 levels), but too deep to hash
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = ingest_file(engine, path)
    assert (report.accepted, report.duplicates, report.quarantined) == (3, 0, 1)
    assert _stored(engine) == 3
    assert _reasons(engine) == [(2, "nested too deeply: more than 254 levels of objects and arrays")]
    engine.dispose()


def test_ids_and_text_postgresql_cannot_hold_are_quarantined_alone_on_every_store(
    store_url: str, tmp_path: Path
) -> None:
    """On PostgreSQL one such record used to fail the whole batch (up to 10,000 valid records, nothing kept)."""
    engine = open_store(store_url)
    path = tmp_path / "logs.jsonl"
    bad = [
        chat_record("long", workload_id="w" * 300),
        chat_record("nul", client_id="web\x00"),
        chat_record("nul in text", answer="a\x00b"),  # NUL inside the JSON text is escaped: fine everywhere
    ]
    lines = [chat_record(f"q{i}", timestamp=i) for i in range(50)]
    lines[10:10] = bad
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in lines))
    report = ingest_file(engine, path, batch_size=20)
    assert (report.accepted, report.quarantined) == (51, 2)
    assert dict(report.quarantine_reasons) == {"workload_id too long": 1, "client_id contains NUL": 1}
    assert _stored(engine) == 51
    with engine.connect() as conn:
        raws = list(conn.scalars(select(quarantined_records.c.raw)))
    assert any("web\\u0000" in raw for raw in raws)
    engine.dispose()


def _gzip_lines(path: Path, count: int) -> bytes:
    data = gzip.compress(
        b"".join(orjson.dumps(chat_record(f"q{i}", timestamp=i)) + b"\n" for i in range(count))
    )
    path.write_bytes(data)
    return data


def test_a_truncated_gzip_keeps_what_came_before_and_says_why_reading_stopped(
    store_url: str, tmp_path: Path
) -> None:
    engine = open_store(store_url)
    path = tmp_path / "logs.jsonl.gz"
    data = _gzip_lines(path, 400)
    path.write_bytes(data[: len(data) * 2 // 3])
    readable = zlib.decompressobj(31).decompress(path.read_bytes()).count(b"\n")
    report = ingest_file(engine, path, batch_size=50)
    assert 0 < readable < 400
    assert report.accepted == readable  # every complete line before the cut
    assert report.error is not None
    assert f"Reading stopped after line {readable}" in report.error and "truncated" in report.error
    assert _stored(engine) == readable
    with engine.connect() as conn:
        ingestion = conn.execute(select(ingestions)).one()
    assert (ingestion.status, ingestion.accepted) == ("failed", readable)
    assert "truncated" in ingestion.error
    engine.dispose()


def test_corrupt_gzip_data_is_reported_with_what_was_read(sqlite_url: str, tmp_path: Path) -> None:
    engine = open_store(sqlite_url)
    path = tmp_path / "logs.jsonl.gz"
    data = bytearray(_gzip_lines(path, 400))
    data[len(data) // 2 : len(data) // 2 + 40] = b"\xff" * 40
    path.write_bytes(bytes(data))
    report = ingest_file(engine, path)
    assert report.error is not None and "corrupt" in report.error
    assert report.accepted == _stored(engine) > 0
    engine.dispose()


def test_reingesting_a_bad_file_adds_no_quarantine_rows(store_url: str, tmp_path: Path) -> None:
    engine = open_store(store_url)
    path = tmp_path / "bad.jsonl"
    path.write_text("{broken\n[1]\n{broken\n" + json.dumps(chat_record()) + "\n")
    first = ingest_file(engine, path)
    second = ingest_file(engine, path)
    assert (first.quarantined, second.quarantined) == (3, 3)  # every ingestion counts what it rejected
    assert (second.accepted, second.duplicates) == (0, 1)
    # ...but each distinct bad line of the source is kept once: line 3 repeats line 1.
    assert [line for line, _ in _reasons(engine)] == [1, 2]
    engine.dispose()


def test_quarantine_rows_are_bounded_per_ingestion_and_the_rest_is_counted(
    store_url: str, tmp_path: Path
) -> None:
    engine = open_store(store_url)
    path = tmp_path / "garbage.jsonl"
    path.write_text("".join(f"not json {i}\n" for i in range(250)) + json.dumps(chat_record()) + "\n")
    report = ingest_file(engine, path, max_quarantine_rows=100)
    assert (report.accepted, report.quarantined) == (1, 250)
    rows = _reasons(engine)
    assert len(rows) == 101
    assert rows[-1][0] == 101 and rows[-1][1].startswith("not kept individually: 150 more rejected items")
    with engine.connect() as conn:
        summary = orjson.loads(
            conn.scalars(select(quarantined_records.c.raw).order_by(quarantined_records.c.id.desc())).first()
        )
    assert summary["not_kept"] == 150 and summary["reasons"] == {"not valid JSON": 150}
    assert (summary["first"]["line_number"], summary["last"]["line_number"]) == (101, 250)
    engine.dispose()


# -- encodings -----------------------------------------------------------------------------------------------------


def test_a_utf8_byte_order_mark_is_skipped(store_url: str, tmp_path: Path) -> None:
    engine = open_store(store_url)
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\n".join(orjson.dumps(chat_record(f"q{i}")) for i in range(3)))
    report = ingest_file(engine, path)
    assert (report.accepted, report.quarantined) == (3, 0)
    # Files concatenated with their marks: a mark before any line, or alone on a line, is skipped too.
    path.write_bytes(b"\xef\xbb\xbf\n\xef\xbb\xbf" + orjson.dumps(chat_record("q9")) + b"\n\xef\xbb\xbf \n")
    report = ingest_file(engine, path)
    assert (report.total, report.accepted, report.quarantined) == (1, 1, 0)
    engine.dispose()


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_a_utf16_or_utf32_file_is_refused_with_how_to_convert_it(
    sqlite_url: str, tmp_path: Path, encoding: str
) -> None:
    engine = open_store(sqlite_url)
    path = tmp_path / "wide.jsonl"
    path.write_text(json.dumps(chat_record()) + "\n", encoding=encoding)
    with pytest.raises(DataError) as info:
        ingest_file(engine, path)
    message = str(info.value)
    assert encoding.upper()[:6] in message and "UTF-8" in message and "iconv" in message
    assert _stored(engine) == 0 and _reasons(engine) == []
    engine.dispose()


def test_a_line_that_is_not_utf8_gets_its_own_reason(sqlite_url: str, tmp_path: Path) -> None:
    engine = open_store(sqlite_url)
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(
        json.dumps(chat_record("café"), ensure_ascii=False).encode("latin-1")
        + b"\n"
        + orjson.dumps(chat_record("ok"))
    )
    report = ingest_file(engine, path)
    assert (report.accepted, report.quarantined) == (1, 1)
    assert report.errors[0].reason == "not UTF-8 text" and "iconv" in report.errors[0].detail
    engine.dispose()


def test_sdk_objects_json_cannot_hold_are_quarantined_with_a_bounded_preview(sqlite_url: str) -> None:
    engine = open_store(sqlite_url)
    cyclic = chat_record("cycle")
    cyclic["self"] = cyclic
    items = [chat_record("ok"), cyclic, chat_record("set", extra={1, 2}), chat_record("big", extra=2**70)]
    report = ingest_objects(engine, items, source="sdk")
    assert (report.accepted, report.quarantined) == (1, 3)
    assert dict(report.quarantine_reasons) == {"nested too deeply": 1, "not serializable as JSON": 2}
    with engine.connect() as conn:
        raws = list(conn.scalars(select(quarantined_records.c.raw).order_by(quarantined_records.c.id)))
    assert len(raws[0]) == 4000 and raws[0].startswith(
        '{"workload_id":"wl"'
    )  # the cycle, cut where quarantine cuts
    assert "1180591620717411303424" in raws[2]
    engine.dispose()
