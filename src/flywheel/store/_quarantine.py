"""Reading quarantined input: the lines and items ingestion rejected, with the reason each was rejected.

Ingestion (``flywheel.pipeline.ingest``) writes the ``quarantined_records`` rows; this module only reads them, for
``GET /api/quarantine`` and ``flywheel quarantine list|show``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Engine, func, or_, select

from flywheel.errors import NotFoundError
from flywheel.store._schema import quarantined_records


@dataclass(frozen=True)
class QuarantinedRecord:
    """One rejected line or item. ``reason`` is ``"<reason>: <detail>"`` (or the bare reason), ``raw`` the input as
    received (truncated by ingestion), ``line_number`` its 1-based line in a file (``None`` for API items)."""

    id: int
    ingestion_id: str | None
    source: str
    line_number: int | None
    reason: str
    raw: str
    created_at: float

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of the API and of ``flywheel quarantine … --json`` (times as naive-UTC ISO-8601, as the
        job API writes them)."""
        return {
            "id": self.id,
            "ingestion_id": self.ingestion_id,
            "source": self.source,
            "line_number": self.line_number,
            "reason": self.reason,
            "raw": self.raw,
            "created_at": datetime.fromtimestamp(self.created_at, UTC).replace(tzinfo=None).isoformat(),
        }


def _record(row: Any) -> QuarantinedRecord:
    return QuarantinedRecord(
        id=int(row.id),
        ingestion_id=row.ingestion_id,
        source=row.source,
        line_number=row.line_number,
        reason=row.reason,
        raw=row.raw,
        created_at=float(row.created_at),
    )


def list_quarantined(
    engine: Engine,
    *,
    source: str | None = None,
    ingestion_id: str | None = None,
    reason: str | None = None,
    order: Literal["asc", "desc"] = "desc",
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[QuarantinedRecord], int]:
    """Quarantined records, newest first by default; returns (page, total matching).

    ``source`` and ``ingestion_id`` match exactly (``api``, ``file:/path/logs.jsonl``; the id an ingestion
    reported). ``reason`` matches the stable reason an ingestion report counts (``invalid timestamp``), whatever
    detail follows it in the stored text, or the stored text itself.
    """
    table = quarantined_records
    conditions = []
    if source is not None:
        conditions.append(table.c.source == source)
    if ingestion_id is not None:
        conditions.append(table.c.ingestion_id == ingestion_id)
    if reason is not None:
        conditions.append(
            or_(table.c.reason == reason, table.c.reason.startswith(f"{reason}: ", autoescape=True))
        )
    # Ids grow with insertion, so they order by time (and by line within one ingestion) without a tie-break.
    query = (
        select(table)
        .where(*conditions)
        .order_by(table.c.id.desc() if order == "desc" else table.c.id)
        .limit(limit)
        .offset(offset)
    )
    count = select(func.count()).select_from(table).where(*conditions)
    with engine.connect() as conn:
        rows = list(conn.execute(query))
        total = int(conn.scalar(count) or 0)
    return [_record(r) for r in rows], total


def quarantined_record(engine: Engine, record_id: int) -> QuarantinedRecord:
    """One quarantined record; NotFoundError for an unknown id."""
    with engine.connect() as conn:
        row = conn.execute(select(quarantined_records).where(quarantined_records.c.id == record_id)).first()
    if row is None:
        raise NotFoundError(
            f"Quarantined record {record_id} not found; list them with `flywheel quarantine list` "
            "or GET /api/quarantine."
        )
    return _record(row)
