"""``/api/quarantine``: the lines and items ingestion rejected, with the reason each was rejected.

Not in the reference. ``POST /api/logs`` and ``flywheel ingest`` count what they quarantine; this is where each
rejected line can be read, so nothing a user sent disappears unexplained.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from flywheel.service.api._errors import error_responses
from flywheel.service.api._params import INT32_MAX, Limit, Offset, Order, text_query
from flywheel.store import list_quarantined, quarantined_record

router = APIRouter(tags=["quarantine"])


class QuarantinedRecordOut(BaseModel):
    id: int
    ingestion_id: str | None = Field(description="The ingestion that rejected it (as its report named it).")
    source: str = Field(description="Where it came from: 'api', 'file:/path/logs.jsonl', …")
    line_number: int | None = Field(description="1-based line in the file; null for an API item.")
    reason: str = Field(
        description="'<reason>: <detail>', the reason being what the ingestion report counted."
    )
    raw: str = Field(description="The input as received (the first 4000 characters).")
    created_at: str = Field(description="When it was rejected (naive UTC, ISO-8601).")


class QuarantineListResponse(BaseModel):
    records: list[QuarantinedRecordOut]
    total: int = Field(description="Records matching the filters.")
    limit: int
    offset: int


@router.get("/quarantine", response_model=QuarantineListResponse, summary="List quarantined input")
async def list_quarantine(
    request: Request,
    source: Annotated[
        str | None, text_query("Only from this source ('api', 'file:/path/logs.jsonl').")
    ] = None,
    ingestion_id: Annotated[str | None, text_query("Only from this ingestion.")] = None,
    reason: Annotated[
        str | None, text_query("Only with this reason ('invalid timestamp'), whatever detail follows it.")
    ] = None,
    order: Annotated[
        Order,
        Query(
            description="desc (default): newest first, what the last ingestion rejected on top; asc: oldest first."
        ),
    ] = "desc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> QuarantineListResponse:
    """Rejected lines and items with their reasons, newest first, paged and filtered."""
    page, total = await run_in_threadpool(
        list_quarantined,
        request.app.state.engine,
        source=source,
        ingestion_id=ingestion_id,
        reason=reason,
        order=order,
        limit=limit,
        offset=offset,
    )
    return QuarantineListResponse(
        records=[QuarantinedRecordOut.model_validate(r.as_dict()) for r in page],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get(
    "/quarantine/{record_id}",
    response_model=QuarantinedRecordOut,
    summary="One quarantined line or item",
    responses=error_responses(404),
)
async def get_quarantined(
    record_id: Annotated[int, Path(ge=1, le=INT32_MAX, description="The record's id.")], request: Request
) -> QuarantinedRecordOut:
    """One rejected line or item with its reason and raw text."""
    record = await run_in_threadpool(quarantined_record, request.app.state.engine, record_id)
    return QuarantinedRecordOut.model_validate(record.as_dict())
