"""Selection streams one workload/client's records newest first, inside a time window, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from sqlalchemy import insert

from factories import chat_record
from flywheel.pipeline.curate import stream_records
from flywheel.store import connect
from flywheel.store._schema import log_records, metadata


def test_newest_first_window_limit_and_isolation(store_url: str) -> None:
    engine = connect(store_url)
    metadata.create_all(engine)
    rows = [
        {
            "record_hash": f"h{w}{i}",
            "workload_id": w,
            "client_id": "c",
            "timestamp": float(ts),
            "ingested_at": 0.0,
            "data": json.dumps(chat_record(f"{w}{i}")),
        }
        for w in ("wl", "other")
        for i, ts in enumerate([5, 1, 9, 3, 7, 7])
    ]
    with engine.begin() as conn:
        conn.execute(insert(log_records), rows)
    got = [json.loads(d)["request"]["messages"][1]["content"] for _, d in stream_records(engine, "wl", "c")]
    assert got == ["wl2", "wl5", "wl4", "wl0", "wl3", "wl1"]  # timestamp desc, ties by newest id
    window = [rid for rid, _ in stream_records(engine, "wl", "c", since=3, until=7)]
    assert len(window) == 2
    assert len(list(stream_records(engine, "wl", "c", limit=4, batch_size=2))) == 4
    assert list(stream_records(engine, "wl", "nobody")) == []
    engine.dispose()
