"""``POST /api/logs``: ingest one record or a JSON array of records."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from flywheel.pipeline.ingest import ingest_objects
from flywheel.service.api._errors import error_responses

#: Largest request body accepted, in bytes.
MAX_BODY_BYTES = 64 * 1024 * 1024


class ItemErrorOut(BaseModel):
    index: int = Field(description="Position of the item in the request (0 for a single record).")
    reason: str = Field(description="Why the item was quarantined.")
    detail: str = Field("", description="Specifics.")


class IngestResponse(BaseModel):
    ingestion_id: str
    total: int = Field(description="Items received.")
    accepted: int = Field(description="New records stored.")
    duplicates: int = Field(description="Records already stored (no-op).")
    quarantined: int = Field(description="Items rejected and kept in quarantine with a reason.")
    quarantine_reasons: dict[str, int] = Field(description="Reason → count.")
    errors: list[ItemErrorOut] = Field(description="Per-item errors (first 1000).")


router = APIRouter(tags=["logs"])


@router.post(
    "/logs",
    response_model=IngestResponse,
    summary="Ingest logged request/response records",
    responses=error_responses(400, 413, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"oneOf": [{"type": "object"}, {"type": "array"}]}}},
        }
    },
)
async def post_logs(request: Request) -> IngestResponse:
    """Store one record (a JSON object) or many (a JSON array) in the blueprint log schema.

    Invalid items are quarantined with a reason and reported in ``errors``; valid items are stored regardless.
    A body that is neither an object nor an array (``null``, a number, a string) is refused (422).
    """
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise HTTPException(
            413, detail=f"Body larger than {MAX_BODY_BYTES} bytes; send records in smaller batches."
        )
    try:
        payload: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(400, detail=f"Body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict | list):
        raise RequestValidationError(
            [
                {
                    "type": "object_or_array_type",
                    "loc": ("body",),
                    "msg": "Body must be a JSON object (one record) or a JSON array of records, "
                    f"not {type(payload).__name__}",
                    "input": payload,
                }
            ]
        )
    items = payload if isinstance(payload, list) else [payload]
    engine = request.app.state.engine
    report = await run_in_threadpool(ingest_objects, engine, items, source="api")
    return IngestResponse.model_validate(report.as_dict())
