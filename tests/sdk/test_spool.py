"""The disk spool in front of a delivery function: nothing lost while the destination is down, order kept."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from flywheel.sdk._sinks import BackgroundSink, Delivery, Record
from flywheel.sdk._spool import SpoolingDelivery
from flywheel.service.api._gateway import store_delivery
from flywheel.store import log_records, open_store


class Destination:
    """A store that is down for its first ``down_for`` calls; it keeps what it stored, duplicates included."""

    def __init__(self, down_for: int = 0) -> None:
        self.down_for = down_for
        self.calls = 0
        self.stored: list[Record] = []

    def __call__(self, batch: list[Record]) -> Delivery:
        self.calls += 1
        if self.calls <= self.down_for:
            raise ConnectionError("the store is down")
        self.stored.extend(batch)
        return Delivery(stored=len(batch))


def records(n: int, start: int = 0) -> list[Record]:
    return [{"n": i} for i in range(start, start + n)]


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_records_sent_while_the_store_is_down_are_stored_once_each_and_in_order(tmp_path: Path) -> None:
    store = Destination(down_for=4)
    spool = SpoolingDelivery(store, tmp_path, retry_interval=0)
    sink = BackgroundSink(spool, destination="test", batch_size=3, flush_interval=0.01)
    sent = records(30)
    for record in sent:
        sink.submit(record)
        if record["n"] % 3 == 2:
            assert sink.flush(5)  # one batch per flush: the first four fail, later ones replay first
    sink.close(5)
    assert spool.stats.spooled > 0  # the outage really made batches wait on disk
    assert store.stored == sent
    assert spool.stats.pending_segments == 0
    assert sink.stats.failed == 0 and sink.stats.dropped == 0
    assert sink.stats.stored == len(sent)  # the replayed records are counted when they are really stored


def test_new_batches_wait_behind_the_spool_while_the_store_was_down_recently(tmp_path: Path) -> None:
    store = Destination(down_for=1)
    spool = SpoolingDelivery(store, tmp_path, retry_interval=60)
    assert spool(records(2)).stored == 0
    assert spool(records(2, start=2)).stored == 0  # not tried again within retry_interval: spooled behind
    assert store.calls == 1 and spool.stats.pending_segments == 2
    assert spool.replay().stored == 4
    assert store.stored == records(4)


def test_records_spooled_by_one_process_are_replayed_by_the_next(tmp_path: Path) -> None:
    first = SpoolingDelivery(Destination(down_for=10**6), tmp_path, retry_interval=0)
    for i in range(5):
        first(records(2, start=2 * i))
    first.close()
    assert first.stats.pending_segments == 5

    store = Destination()
    second = SpoolingDelivery(store, tmp_path, retry_interval=0.05)
    second.start()  # start-up: leftovers are replayed with no new traffic
    try:
        wait_for(lambda: second.stats.pending_segments == 0)
    finally:
        second.close()
    assert store.stored == records(10)


def test_the_timer_drains_the_spool_once_the_store_is_back_without_new_traffic(tmp_path: Path) -> None:
    store = Destination(down_for=3)
    spool = SpoolingDelivery(store, tmp_path, retry_interval=0.02)
    spool(records(3))
    spool.start()
    try:
        wait_for(lambda: spool.stats.pending_segments == 0)
    finally:
        spool.close()
    assert store.stored == records(3)


def test_a_segment_torn_by_a_crash_mid_write_loses_no_complete_record_and_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = SpoolingDelivery(Destination(down_for=10**6), tmp_path, retry_interval=0)
    first(records(2))
    first(records(2, start=2))
    # A crash while writing the next segment: its temp file holds one whole line and a cut-off one.
    torn = tmp_path / f"{time.time_ns():020d}-1-000000.jsonl.tmp"
    torn.write_bytes(b'{"n":4}\n{"n":5,"tru')

    store = Destination()
    with caplog.at_level(logging.WARNING, logger="flywheel.sdk"):
        second = SpoolingDelivery(store, tmp_path, retry_interval=0)
        second.replay()
    assert store.stored == records(5)
    assert second.stats.torn == 1 and second.stats.pending_segments == 0
    kept = list(tmp_path.glob("*.torn"))
    assert [p.read_bytes() for p in kept] == [b'{"n":4}\n{"n":5,"tru']
    assert "torn" in caplog.text and "1 unreadable lines" in caplog.text


def test_a_crash_between_a_replayed_delivery_and_its_deletion_stores_nothing_twice(home: Path) -> None:
    """The store commits, then the segment is not deleted (the connection drops): the next replay is a no-op."""
    engine = open_store(f"sqlite:///{home / 'flywheel.db'}")
    ingest = store_delivery(engine)
    calls = 0

    def commits_then_fails(batch: list[Record]) -> Delivery:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("the store is down")
        result = ingest(batch)
        if calls == 2:
            raise ConnectionError("connection lost after the commit")
        return result

    spool = SpoolingDelivery(commits_then_fails, home / "spool", retry_interval=0)
    batch = [exchange(i) for i in range(3)]
    spool(batch)  # down: spooled
    spool.replay()  # stored, but reported as failed: the segment stays
    assert spool.stats.pending_segments == 1
    assert spool.replay().stored == 3  # replayed again: three duplicates, nothing new
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(log_records)).scalar_one() == 3
    engine.dispose()


def exchange(i: int) -> Record:
    return {
        "timestamp": 1_700_000_000 + i,
        "workload_id": "w",
        "client_id": "c",
        "request": {"model": "teacher", "messages": [{"role": "user", "content": f"question {i}"}]},
        "response": {
            "id": f"chatcmpl-{i}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "teacher",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"answer {i}"},
                    "finish_reason": "stop",
                }
            ],
        },
    }


class SlowStore(Destination):
    """A store that holds every delivery until ``release`` is set (a slow or hung database)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def __call__(self, batch: list[Record]) -> Delivery:
        self.release.wait(30)
        return super().__call__(batch)


def test_a_started_spool_never_makes_its_caller_wait_for_a_slow_store_and_keeps_the_order(
    tmp_path: Path,
) -> None:
    store = SlowStore()
    spool = SpoolingDelivery(store, tmp_path, retry_interval=60)
    spool.start()
    sink = BackgroundSink(spool, destination="test", batch_size=10, flush_interval=0.01)
    sent = records(500)  # fifty batches while the store answers nothing
    try:
        for record in sent:
            sink.submit(record)
            if record["n"] % 10 == 9:
                assert sink.flush(5)  # the sink's thread got rid of the batch without waiting for the store
        assert sink.stats.dropped == 0 and spool.stats.in_hand == 10 and spool.stats.spooled == 490
        store.release.set()
        assert spool.wait_idle(10)
    finally:
        sink.close(5)
        spool.close(5)
    assert store.stored == sent  # the batch in hand first, then the spool in order; each once
    assert spool.stats.stored == 500 and spool.stats.pending_segments == 0


def test_a_batch_still_in_the_writers_hand_at_shutdown_is_spooled_for_the_next_process(
    tmp_path: Path,
) -> None:
    hung = SlowStore()
    first = SpoolingDelivery(hung, tmp_path)
    first.start()
    first(records(3))
    wait_for(lambda: first.stats.in_hand == 3)
    first.close(timeout=0.2)  # the store never answered
    assert first.stats.pending_segments == 1

    store = Destination()
    second = SpoolingDelivery(store, tmp_path)
    second.start()
    try:
        wait_for(lambda: second.stats.pending_segments == 0)
    finally:
        second.close()
        hung.release.set()
    assert store.stored == records(3)


def test_a_handed_batch_that_fails_is_replayed_before_the_batches_that_came_after_it(tmp_path: Path) -> None:
    store = Destination(down_for=1)
    spool = SpoolingDelivery(store, tmp_path, retry_interval=0.05)
    spool.start()
    try:
        for i in range(5):
            spool(records(2, start=2 * i))
        wait_for(lambda: spool.stats.stored == 10)
    finally:
        spool.close()
    assert store.stored == records(10)
