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

#: Largest request body accepted, in bytes (checked before the body is read past it).
MAX_BODY_BYTES = 64 * 1024 * 1024
#: Most records in one request. The SDK sends 100 at a time; a log shipper can send 10,000 (one store batch). A
#: cap on items, not only bytes, because a small body can hold a million tiny items, each of which costs a
#: validation and possibly a quarantine row.
MAX_ITEMS = 10_000
#: Quarantined items of one request stored one by one (the response lists as many errors); past it they are
#: counted, in the response and in one summary row.
MAX_QUARANTINE_ROWS = 1_000

_UTF8_BOM = b"\xef\xbb\xbf"


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
    A body that is neither an object nor an array (``null``, a number, a string) is refused (422); one over
    64 MiB or with more than 10,000 records is refused (413).
    """
    body = await _read_body(request)
    if body.startswith(_UTF8_BOM):
        body = body[len(_UTF8_BOM) :]
    try:
        payload: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(400, detail=f"Body is not valid JSON: {exc}{_encoding_hint(body)}") from None
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
    if len(items) > MAX_ITEMS:
        raise HTTPException(
            413,
            detail=f"Body holds {len(items)} records, more than {MAX_ITEMS}; send them in smaller batches.",
        )
    engine = request.app.state.engine
    report = await run_in_threadpool(
        ingest_objects, engine, items, source="api", max_quarantine_rows=MAX_QUARANTINE_ROWS
    )
    return IngestResponse.model_validate(report.as_dict())


async def _read_body(request: Request) -> bytes:
    """The request body, refused (413) as soon as it is known to exceed :data:`MAX_BODY_BYTES`: by its declared
    length before anything is read, else while it streams in."""
    too_large = HTTPException(
        413, detail=f"Body larger than {MAX_BODY_BYTES} bytes; send records in smaller batches."
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _encoding_hint(body: bytes) -> str:
    """A hint when a body that is not JSON is text in another encoding than UTF-8."""
    if body[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in body[:64]:
        return "; the body looks UTF-16 or UTF-32 encoded: send it as UTF-8"
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"; byte 0x{body[exc.start]:02x} at position {exc.start} is not UTF-8: send the body as UTF-8"
    return ""
