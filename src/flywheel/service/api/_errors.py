"""One error shape for every 4xx answer of the API, and the OpenAPI entries that document it.

Every error body is ``{"detail": …}``, with one schema per status code:

* **422** (the request does not validate): FastAPI's own ``HTTPValidationError``. ``detail`` is a list of
  ``{loc, msg, type}``, one item per problem, ``loc`` naming the parameter (``["query", "offset"]``,
  ``["body", "data_split_config", "eval_size"]``). flywheel's own checks of a request (per-job overrides checked
  against the configuration: :class:`ConfigError`, :class:`DataError`) answer with the same list.
* **every other 4xx** (400, 401, 404, 409, 413): :class:`ErrorResponse`, where ``detail`` is one string saying
  what happened and how to fix it.

Why keep two schemas rather than invent one? Both come from the reference: its errors are ``{"detail": "<string>"}``
and its 422 is FastAPI's list. Its tutorial client and any client generated from its OpenAPI keep working. A
single new shape would break one or the other. Generated clients broke because of shapes the OpenAPI never
mentioned, not because there were two: some 422s carried a string ``detail``, and 400/401/404/409/413 were not
declared. Now each status has exactly one shape, and :func:`error_responses` lets every route declare the statuses
it can answer.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from flywheel.errors import ConfigError, ConflictError, DataError, FlywheelError, NotFoundError, StoreError


class ErrorResponse(BaseModel):
    """The body of every 4xx answer except 422."""

    detail: str = Field(description="What went wrong and how to fix it.")


_DESCRIPTIONS = {
    400: "The request body cannot be read (not JSON).",
    401: "Missing or invalid API key (only when the server has keys: FLYWHEEL_API_KEYS).",
    404: "No such object.",
    409: "The object's current state forbids the action.",
    413: "The request body is too large.",
}


#: FastAPI's own 422 entry, for a route whose input FastAPI does not validate (it declares 422 on every route that
#: takes parameters, and defines the schema in the components then; this app always has such routes).
_VALIDATION_ERROR = {
    "description": "Validation Error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries declaring that a route can answer ``codes``: :class:`ErrorResponse`, or
    FastAPI's ``HTTPValidationError`` for 422 (needed only where the route reads its input itself)."""
    return {
        code: _VALIDATION_ERROR
        if code == 422
        else {"model": ErrorResponse, "description": _DESCRIPTIONS[code]}
        for code in codes
    }


#: Status of the errors flywheel raises on purpose. ConfigError and DataError are 422, in FastAPI's list shape.
_STATUS: dict[type[FlywheelError], int] = {NotFoundError: 404, ConflictError: 409, StoreError: 503}


def _key_path(path: str) -> list[str | int]:
    """``"data_split_config.eval_size"`` → ``["data_split_config", "eval_size"]``; ``"nims[0].backend"`` →
    ``["nims", 0, "backend"]``."""
    parts: list[str | int] = []
    for piece in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        parts.append(int(piece[1:-1]) if piece.startswith("[") else piece)
    return parts


def _validation_items(exc: ConfigError | DataError, body_fields: frozenset[str]) -> list[dict[str, Any]]:
    """The error as FastAPI's validation items. A key path that starts with a field of the request body is located
    in the body; any other key path names the server's configuration file (``["config", "nims", 0, "backend"]``)."""
    kind = "config_error" if isinstance(exc, ConfigError) else "data_error"
    problems = exc.problems if isinstance(exc, ConfigError) else []
    if not problems:
        return [{"loc": ["body"], "msg": str(exc), "type": kind}]
    items = []
    for key_path, message in problems:
        parts = _key_path(key_path)
        where = "body" if parts and parts[0] in body_fields else "config"
        items.append({"loc": [where, *parts], "msg": message, "type": kind})
    return items


def _json_safe(value: Any) -> Any:
    """``value`` with every number JSON can write: NaN and infinities (which Python's JSON parser accepts in a
    request) become their names as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


class _ErrorJSON(JSONResponse):
    """An error body that can always be written. An error may quote what the client sent (FastAPI's ``input``),
    and that may be a number JSON cannot hold (NaN) or text that is not valid Unicode (a lone surrogate, legal in
    JSON): the default rendering fails on both, turning a 422 into a 500. Written in ASCII, with such numbers named.
    """

    def render(self, content: Any) -> bytes:
        return json.dumps(_json_safe(content), ensure_ascii=True, separators=(",", ":")).encode("ascii")


def install_error_handlers(app: FastAPI, body_fields: frozenset[str]) -> None:
    """Answer :class:`FlywheelError` and request validation errors with the shapes above. ``body_fields``: the
    top-level fields of the request bodies that per-job overrides are checked in (a ConfigError on one of them is
    located in the body)."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _ErrorJSON({"detail": jsonable_encoder(exc.errors())}, status_code=422)

    @app.exception_handler(FlywheelError)
    async def flywheel_error(_request: Request, exc: FlywheelError) -> JSONResponse:
        if isinstance(exc, ConfigError | DataError):
            return _ErrorJSON({"detail": _validation_items(exc, body_fields)}, status_code=422)
        code = next((c for t, c in _STATUS.items() if isinstance(exc, t)), 400)
        return _ErrorJSON({"detail": str(exc)}, status_code=code)
