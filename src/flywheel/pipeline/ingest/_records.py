"""Checking one logged record and computing its identity.

A record is the blueprint's log schema: ``timestamp``, ``workload_id``, ``client_id``, ``request`` (an OpenAI
chat-completions request) and ``response`` (an OpenAI ChatCompletion). Extra top-level fields are kept.
The reference's loader format — ``{"messages": [...], "tools": [...]}`` whose last message is the answer — is turned
into such a record when the workload and client ids are given.

Functions here are pure: they return a :class:`PreparedRecord` or a :class:`Rejection`, never raise for bad input.
A record that passes is within every store's limits (:mod:`flywheel.pipeline.ingest._limits`).
"""

from __future__ import annotations

import base64
import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from flywheel.pipeline.ingest import _limits

#: Version prefix of record identities; bump it if the hashing rule ever changes.
HASH_VERSION = "h1"

#: Epoch values above this are taken as milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
_MILLIS_THRESHOLD = 1e11


@dataclass(frozen=True, slots=True)
class PreparedRecord:
    """A valid record, ready to store."""

    record_hash: str
    workload_id: str
    client_id: str
    timestamp: float
    data: str


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a line or item cannot be stored. ``reason`` is stable (it is counted); ``detail`` adds specifics."""

    reason: str
    detail: str = ""

    def describe(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason


def record_hash(record: dict[str, Any]) -> str:
    """Versioned content hash of a record: same content (in any key order) → same identity.

    ``h1:`` + the first 192 bits of SHA-256 over the key-sorted JSON, URL-safe base64 (35 characters). The short
    form keeps the store's unique index small, which is what bounds SQLite ingestion speed on large stores.
    Raises ``orjson.JSONEncodeError`` (a ``TypeError``) for a record JSON cannot hold or nested deeper than
    orjson's 254 levels; :func:`prepare_record` turns that into a :class:`Rejection`.
    """
    canonical = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    return f"{HASH_VERSION}:{base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()[:24]).decode()}"


def parse_timestamp(value: Any) -> float | Rejection:
    """Seconds since the epoch from epoch seconds, epoch milliseconds or an ISO-8601 string."""
    if isinstance(value, bool):
        return Rejection("invalid timestamp", f"{value!r} is not a time")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                return Rejection(
                    "invalid timestamp", f"{value[:64]!r} is neither epoch seconds/milliseconds nor ISO-8601"
                )
            if parsed.tzinfo is None:  # naive times in logs are UTC, as the reference writes them
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.timestamp()
    else:
        return Rejection("invalid timestamp", f"{type(value).__name__} is not a time")
    if not math.isfinite(seconds) or seconds < 0:
        return Rejection("invalid timestamp", f"{value!r} is not a time")
    return seconds / 1000.0 if seconds > _MILLIS_THRESHOLD else seconds


def _check_request_response(record: dict[str, Any]) -> Rejection | None:
    request = record.get("request")
    if not isinstance(request, dict):
        return Rejection("missing request" if request is None else "request is not an object")
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        return Rejection("missing or empty request.messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return Rejection("request.messages item is not an object", f"item {i}")
    response = record.get("response")
    if not isinstance(response, dict):
        return Rejection("missing response" if response is None else "response is not an object")
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices:
        return Rejection("missing or empty response.choices")
    for i, choice in enumerate(choices):
        if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
            return Rejection("response choice without message", f"choice {i}")
    return None


def _id_field(record: dict[str, Any], key: str, override: str | None) -> str | Rejection:
    if override is not None:
        return override  # checked once by the caller (check_overrides)
    value = record.get(key)
    if value is None:
        return Rejection(f"missing {key}")
    if not isinstance(value, str):
        return Rejection(f"{key} is not a string", f"got {type(value).__name__}")
    if not value.strip():
        return Rejection(f"empty {key}")
    return _limits.check_id(key, value) or value


def loader_line_to_record(
    obj: dict[str, Any], workload_id: str, client_id: str
) -> dict[str, Any] | Rejection:
    """Turn a reference loader line ``{"messages": [...], "tools": [...]}`` into a log record (no timestamp)."""
    messages = obj.get("messages")
    if not isinstance(messages, list) or len(messages) < 2:
        return Rejection("loader line needs at least a prompt and an answer in messages")
    answer = messages[-1]
    if not isinstance(answer, dict) or answer.get("role") != "assistant":
        return Rejection("loader line's last message is not an assistant answer")
    request: dict[str, Any] = {"model": "not-a-model", "messages": messages[:-1]}
    if obj.get("tools"):
        request["tools"] = obj["tools"]
    finish = "tool_calls" if answer.get("tool_calls") else "stop"
    return {
        "workload_id": workload_id,
        "client_id": client_id,
        "request": request,
        "response": {"choices": [{"index": 0, "message": answer, "finish_reason": finish}]},
    }


def prepare_record(
    obj: Any,
    *,
    raw: str | None = None,
    workload_id: str | None = None,
    client_id: str | None = None,
    now: float,
) -> PreparedRecord | Rejection:
    """Validate one parsed record and compute what is stored.

    ``raw`` is the record's original JSON text when it came from a file; it is stored as is when nothing had to be
    changed (saves re-serialising). ``workload_id``/``client_id``, when given, override the record's own fields.
    ``now`` fills a missing timestamp (after hashing, so re-ingesting the same line stays a no-op).
    """
    if not isinstance(obj, dict):
        return Rejection("not a JSON object", f"got {type(obj).__name__}")
    modified = False
    if "request" not in obj and "response" not in obj and "messages" in obj:
        if workload_id is None or client_id is None:
            return Rejection("loader-format line needs --workload-id and --client-id")
        converted = loader_line_to_record(obj, workload_id, client_id)
        if isinstance(converted, Rejection):
            return converted
        obj, modified = converted, True
    wid = _id_field(obj, "workload_id", workload_id)
    if isinstance(wid, Rejection):
        return wid
    cid = _id_field(obj, "client_id", client_id)
    if isinstance(cid, Rejection):
        return cid
    problem = _check_request_response(obj)
    if problem is not None:
        return problem
    if obj.get("workload_id") != wid or obj.get("client_id") != cid:
        obj = {**obj, "workload_id": wid, "client_id": cid}
        modified = True
    try:
        identity = record_hash(obj)
    except TypeError as exc:  # orjson.JSONEncodeError: too deep, or not JSON (SDK objects)
        return _limits.unserializable(exc)
    if "timestamp" in obj and obj["timestamp"] is not None:
        ts = parse_timestamp(obj["timestamp"])
        if isinstance(ts, Rejection):
            return ts
    else:
        ts = now
        obj = {**obj, "timestamp": now}
        modified = True
    if raw is not None and not modified:
        data = raw
        # Characters are at most 4 bytes: only a text that might be over the limit is measured in bytes.
        if len(raw) * 4 > _limits.MAX_RECORD_BYTES and len(raw.encode()) > _limits.MAX_RECORD_BYTES:
            return _limits.too_large(len(raw.encode()))
    else:
        encoded = orjson.dumps(obj)
        if len(encoded) > _limits.MAX_RECORD_BYTES:
            return _limits.too_large(len(encoded))
        data = encoded.decode()
    return PreparedRecord(identity, wid, cid, ts, data)
