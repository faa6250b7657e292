"""Reading quarantined input from the store (``flywheel.store.list_quarantined`` / ``quarantined_record``)."""

from __future__ import annotations

import pytest

from flywheel.errors import NotFoundError
from flywheel.pipeline.ingest import ingest_objects
from flywheel.store import list_quarantined, open_store, quarantined_record


def test_reads_what_ingestion_quarantined_newest_first(store_url: str) -> None:
    engine = open_store(store_url)
    first = ingest_objects(engine, [1], source="api")
    second = ingest_objects(engine, ["two", [3]], source="sdk")
    page, total = list_quarantined(engine)
    assert total == 3
    assert [(r.ingestion_id, r.raw) for r in page] == [
        (second.ingestion_id, "[3]"),
        (second.ingestion_id, '"two"'),
        (first.ingestion_id, "1"),
    ]
    oldest, _ = list_quarantined(engine, order="asc", limit=1)
    assert oldest == [page[-1]]
    assert list_quarantined(engine, source="sdk", offset=1)[0] == [page[1]]
    shown = quarantined_record(engine, page[0].id)
    assert shown == page[0]
    assert set(shown.as_dict()) == {
        "id",
        "ingestion_id",
        "source",
        "line_number",
        "reason",
        "raw",
        "created_at",
    }
    with pytest.raises(NotFoundError, match="not found"):
        quarantined_record(engine, page[0].id + 100)
    engine.dispose()
