"""Selection: the records of one ``(workload_id, client_id)``, newest first, streamed from the store."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, cast

from sqlalchemy import Engine, Select, and_, or_, select

from flywheel.store._schema import log_records


def selection_query(
    workload_id: str,
    client_id: str,
    *,
    since: float | None = None,
    until: float | None = None,
    max_row_id: int | None = None,
    limit: int | None = None,
    start_at: tuple[float, int] | None = None,
) -> Select[Any]:
    """``(id, data)`` of matching rows, newest first (ties broken by id), inside the optional time window.

    ``since`` is inclusive and ``until`` exclusive, both in epoch seconds. ``start_at=(timestamp, id)`` resumes the
    same order at that row (inclusive), so that ranges of the stream can be read independently.
    """
    table = log_records
    stmt = select(table.c.id, table.c.data).where(
        table.c.workload_id == workload_id, table.c.client_id == client_id
    )
    if since is not None:
        stmt = stmt.where(table.c.timestamp >= since)
    if until is not None:
        stmt = stmt.where(table.c.timestamp < until)
    if max_row_id is not None:
        stmt = stmt.where(table.c.id <= max_row_id)
    if start_at is not None:
        ts, row_id = start_at
        stmt = stmt.where(or_(table.c.timestamp < ts, and_(table.c.timestamp == ts, table.c.id <= row_id)))
    stmt = stmt.order_by(table.c.timestamp.desc(), table.c.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    return stmt


def stream_records(
    engine: Engine,
    workload_id: str,
    client_id: str,
    *,
    since: float | None = None,
    until: float | None = None,
    max_row_id: int | None = None,
    limit: int | None = None,
    start_at: tuple[float, int] | None = None,
    batch_size: int = 5000,
) -> Generator[tuple[int, str], None, None]:
    """Yield ``(row_id, record_json)`` newest first without loading the whole result into memory.

    The consumer decides when to stop; closing the generator closes the cursor.
    """
    stmt = selection_query(
        workload_id,
        client_id,
        since=since,
        until=until,
        max_row_id=max_row_id,
        limit=limit,
        start_at=start_at,
    )
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            # SQLite cursors are lazy already, and the two selected columns need no result processing (integer,
            # text): reading the DBAPI cursor directly skips building a Row per record, a noticeable share of the
            # time on millions of records. (No yield_per here: its buffering would read ahead of the raw cursor.)
            result = conn.execute(stmt)
            cursor = result.cursor
            try:
                while batch := cursor.fetchmany(batch_size):
                    yield from batch
            finally:
                result.close()
            return
        result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(stmt)
        for partition in result.partitions():
            yield from cast("list[tuple[int, str]]", partition)


def row_timestamp(engine: Engine, row_id: int) -> float:
    """The stored timestamp of one row (to resume a stream at that row with ``start_at``)."""
    with engine.connect() as conn:
        value = conn.execute(select(log_records.c.timestamp).where(log_records.c.id == row_id)).scalar_one()
    return float(value)
