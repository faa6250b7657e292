"""``logs()``: records sent to ``POST /api/logs`` in batches the server accepts, with one summary over them all."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flywheel.client import AsyncClient, Client
from flywheel.errors import DataError
from scripted_jobs import classification_logs


def _with_bad_items() -> list[Any]:
    """60 valid records, with an int at index 30 and a record without workload_id at index 55."""
    records: list[Any] = classification_logs(60)
    records.insert(30, 42)
    bad = dict(records[54])
    del bad["workload_id"]
    records.insert(55, bad)
    return records


def _check_summary(summary: Any) -> None:
    assert len(summary["ingestion_ids"]) == 3 and len(set(summary["ingestion_ids"])) == 3  # 25 + 25 + 12
    assert (summary["total"], summary["accepted"], summary["duplicates"], summary["quarantined"]) == (
        62,
        60,
        0,
        2,
    )
    assert summary["quarantine_reasons"] == {"not a JSON object": 1, "missing workload_id": 1}
    # indexes into the records given, not into each request's body
    assert [(e["index"], e["reason"]) for e in summary["errors"]] == [
        (30, "not a JSON object"),
        (55, "missing workload_id"),
    ]


def test_records_go_in_batches_and_errors_point_into_the_records_given(server: Any) -> None:
    with Client(server.url, api_key=server.api_key) as fw:
        _check_summary(fw.logs(_with_bad_items(), batch_size=25))
        again = fw.logs(classification_logs(60))
        assert (len(again["ingestion_ids"]), again["accepted"], again["duplicates"]) == (1, 0, 60)
        assert fw.list_quarantine(reason="missing workload_id")["total"] == 1


def test_the_async_client_batches_the_same_way(server: Any) -> None:
    async def main() -> None:
        async with AsyncClient(server.url, api_key=server.api_key) as fw:
            _check_summary(await fw.logs(iter(_with_bad_items()), batch_size=25))
            page = await fw.list_quarantine(order="asc", limit=1)
            assert (page["total"], page["records"][0]["raw"]) == (2, "42")
            assert await fw.get_quarantined(page["records"][0]["id"]) == page["records"][0]

    asyncio.run(main())


def test_a_batch_closes_before_it_outgrows_max_batch_bytes(server: Any) -> None:
    records = classification_logs(5)
    with Client(server.url, api_key=server.api_key) as fw:
        one_each = fw.logs(records, max_batch_bytes=1)  # every record is larger: each goes alone
        assert (len(one_each["ingestion_ids"]), one_each["accepted"]) == (5, 5)
        single = fw.logs(classification_logs(6)[5])  # one dict is one record
        assert (len(single["ingestion_ids"]), single["accepted"]) == (1, 1)
        assert fw.logs([]) == {
            "ingestion_ids": [],
            "total": 0,
            "accepted": 0,
            "duplicates": 0,
            "quarantined": 0,
            "quarantine_reasons": {},
            "errors": [],
        }


def test_a_record_that_is_not_json_stops_before_its_batch_is_sent(server: Any) -> None:
    records: list[Any] = [*classification_logs(3), {"when": object()}]
    with Client(server.url, api_key=server.api_key) as fw:
        with pytest.raises(
            DataError, match=r"^Record 3 cannot be sent as JSON: Type is not JSON serializable"
        ):
            fw.logs(records)
        assert fw.list_quarantine()["total"] == 0 and fw.logs(classification_logs(3))["duplicates"] == 0
        with pytest.raises(
            ValueError, match=r"^batch_size must be 1 to 10000 \(the server's limit\), not 10001$"
        ):
            fw.logs(records, batch_size=10_001)


def test_the_batch_limit_is_the_servers() -> None:
    from flywheel.client._core import LOG_BATCH, LOG_BATCH_BYTES, MAX_LOG_ITEMS
    from flywheel.service.api._logs import MAX_BODY_BYTES, MAX_ITEMS

    assert MAX_LOG_ITEMS == MAX_ITEMS and LOG_BATCH <= MAX_ITEMS and LOG_BATCH_BYTES < MAX_BODY_BYTES
