"""What :class:`Client` and :class:`AsyncClient` share: every operation written once, without I/O.

An operation is a generator that yields *steps* — :class:`Call` (one HTTP request; the driver sends back the parsed
JSON answer), :class:`Sleep`, :class:`Notify` (call the user's callback) and :class:`Emit` (one item of an iterator)
— and returns the result. The sync client runs the steps with ``httpx.Client`` and ``time.sleep``, the async one with
``httpx.AsyncClient`` and ``asyncio.sleep``; building requests, paging, waiting, batching and turning error answers
into :class:`flywheel.errors.FlywheelError` exist once, here.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast
from urllib.parse import quote

from flywheel.client._types import (
    Health,
    IngestItemError,
    IngestSummary,
    JobAction,
    JobCreated,
    JobDetail,
    JobPage,
    QuarantinedRecord,
    QuarantinePage,
    Report,
    SamplePage,
)
from flywheel.errors import ConfigError, ConflictError, DataError, FlywheelError, NotFoundError

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")

#: A job in one of these states will not change any more (``flywheel.service.jobs.TERMINAL``; not imported from
#: there, which would load SQLAlchemy).
TERMINAL = frozenset({"completed", "failed", "cancelled"})
#: Most records the server takes in one ``POST /api/logs`` (its ``MAX_ITEMS``).
MAX_LOG_ITEMS = 10_000
#: Records sent per ``POST /api/logs`` by default.
LOG_BATCH = 1_000
#: Largest body ``logs()`` builds by default, in bytes (the server refuses more than 64 MiB).
LOG_BATCH_BYTES = 16 * 1024 * 1024
#: Seconds one request may take (connect, send, read) by default.
DEFAULT_TIMEOUT_S = 30.0

EvalType = Literal["base", "icl", "customized"]
JobStatus = Literal["pending", "running", "completed", "failed", "cancelled"]
Order = Literal["asc", "desc"]


# ------------------------------------------------------------------------------------------------------ steps


@dataclass(frozen=True)
class Call:
    """One HTTP request; the driver answers with the parsed JSON body (or raises the matching error)."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    #: A body already encoded as JSON (``json`` is then None).
    content: bytes | None = None


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Notify:
    """Call ``callback(value)`` (awaited by the async client when it returns an awaitable)."""

    callback: Callable[[Any], Any]
    value: Any


@dataclass(frozen=True)
class Emit:
    """Hand ``item`` to the caller of an iterating operation."""

    item: Any


Step = Call | Sleep | Notify | Emit
Op = Generator[Step, Any, T]


# ------------------------------------------------------------------------------------------------------ connection


class Connection:
    """The server a client talks to: its URL (and the URL fit to show), the request headers, the timeout, and the
    reading of answers. Holds the API key; its repr does not show it."""

    def __init__(self, base_url: str | None, api_key: str | None, timeout_s: float) -> None:
        # pydantic: loaded when a client is built, not on `import flywheel`
        from flywheel.config import redact_url

        url = base_url if base_url is not None else os.environ.get("FLYWHEEL_SERVER", "")
        if not url.strip():
            raise ConfigError(
                "No flywheel server URL: pass base_url='http://host:8000' or set FLYWHEEL_SERVER.",
                [("base_url", "missing")],
            )
        key = api_key if api_key is not None else os.environ.get("FLYWHEEL_API_KEY")
        self.url = url.strip().rstrip("/")
        self.shown_url = redact_url(self.url)  # the URL may carry a password or a token
        self.timeout_s = timeout_s
        self._key = key or None
        self.headers = {"Accept": "application/json"}
        if self._key:
            self.headers["Authorization"] = f"Bearer {self._key}"

    def __repr__(self) -> str:
        return f"{self.shown_url!r}, api_key={'***' if self._key else None}"

    def scrub(self, text: str) -> str:
        """``text`` without the URL's secrets or the API key (a key under 8 characters is left: replacing it would
        garble ordinary words, and it is no secret worth the name)."""
        text = text.replace(self.url, self.shown_url)
        return text.replace(self._key, "***") if self._key and len(self._key) >= 8 else text

    def unreachable(self, call: Call, exc: Exception) -> FlywheelError:
        """The error for a request that got no answer (``exc``: the HTTP library's)."""
        import httpx

        reason = self.scrub(str(exc) or type(exc).__name__)
        if isinstance(exc, httpx.TimeoutException):
            return FlywheelError(
                f"The flywheel server at {self.shown_url} did not answer {call.method} {call.path} within "
                f"{self.timeout_s:g} s ({reason}); give the client a longer timeout_s."
            )
        return FlywheelError(f"Cannot reach the flywheel server at {self.shown_url}: {reason}")

    def answer(self, call: Call, response: httpx.Response) -> Any:
        """The parsed JSON body of ``response``; an error answer raises the matching :class:`FlywheelError`."""
        status = response.status_code
        if status >= 400:
            try:
                body: Any = response.json()
            except ValueError:
                body = None
            detail = self.scrub(error_text(body, response.text.strip() or f"HTTP {status}"))
            if status == 401:
                raise ConfigError(f"{detail} (set FLYWHEEL_API_KEY)", [("api_key", detail)])
            if status == 422:
                raise ConfigError(detail, validation_problems(body))
            raise {404: NotFoundError, 409: ConflictError}.get(status, FlywheelError)(detail)
        try:
            return response.json()
        except ValueError:
            raise FlywheelError(
                f"{self.shown_url} answered {call.method} {call.path} with HTTP {status} but not JSON "
                f"({response.headers.get('content-type', 'no content type')}): it is not a flywheel server, "
                "or not its base URL. Check the server URL (--server / FLYWHEEL_SERVER)."
            ) from None


def error_text(body: Any, fallback: str) -> str:
    """The message of an API error body: ``detail`` as a string, or one ``loc: msg`` per item of a 422, joined."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list) and detail:
        lines = []
        for item in detail:
            if not isinstance(item, dict):
                lines.append(str(item))
                continue
            loc = _loc(item)
            lines.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
        return "; ".join(lines)
    return fallback


def validation_problems(body: Any) -> list[tuple[str, str]]:
    """A 422's items as :attr:`ConfigError.problems`: ``(key path, message)`` pairs."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if not isinstance(detail, list):
        return []
    return [(_loc(item), str(item.get("msg", ""))) for item in detail if isinstance(item, dict)]


def _loc(item: Mapping[str, Any]) -> str:
    return ".".join(str(p) for p in item.get("loc", []) if p != "body")


# ------------------------------------------------------------------------------------------------------ operations


def _segment(value: str | int) -> str:
    """A path segment: an id holding ``/`` or ``?`` stays one segment (and then is simply not found)."""
    return quote(str(value), safe="")


def _params(**values: Any) -> dict[str, Any]:
    """Query parameters without the unset ones (the server's defaults apply)."""
    return {k: v for k, v in values.items() if v is not None}


def health() -> Op[Health]:
    return cast(Health, (yield Call("GET", "/health")))


def create_job(
    workload_id: str,
    client_id: str,
    *,
    data_split_config: Mapping[str, Any] | None,
    icl_config: Mapping[str, Any] | None,
    evaluation_config: Mapping[str, Any] | None,
    candidates: Iterable[str] | None,
    since: float | datetime | None,
    until: float | datetime | None,
) -> Op[JobCreated]:
    body: dict[str, Any] = {"workload_id": workload_id, "client_id": client_id}
    optional = {
        "data_split_config": None if data_split_config is None else dict(data_split_config),
        "icl_config": None if icl_config is None else dict(icl_config),
        "evaluation_config": None if evaluation_config is None else dict(evaluation_config),
        "candidates": None if candidates is None else list(candidates),
        "since": _epoch(since),
        "until": _epoch(until),
    }
    body.update(_params(**optional))
    return cast(JobCreated, (yield Call("POST", "/api/jobs", json=body)))


def _epoch(when: float | datetime | None) -> float | None:
    """Epoch seconds; a naive datetime is taken as UTC (as the API writes its times)."""
    if when is None or not isinstance(when, datetime):
        return None if when is None else float(when)
    if when.tzinfo is None:
        from datetime import UTC

        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def list_jobs(
    *,
    workload_id: str | None,
    client_id: str | None,
    status: str | None,
    order: str | None,
    limit: int | None,
    offset: int | None,
) -> Op[JobPage]:
    params = _params(
        workload_id=workload_id, client_id=client_id, status=status, order=order, limit=limit, offset=offset
    )
    return cast(JobPage, (yield Call("GET", "/api/jobs", params=params)))


def iter_pages(path: str, key: str, params: Mapping[str, Any], page_size: int) -> Op[None]:
    """Emit every item of a paged list, ``page_size`` per request, until a page comes back short."""
    if not 1 <= page_size <= 500:
        raise ValueError(f"page_size must be 1 to 500 (the server's page limit), not {page_size}")
    offset = 0
    while True:
        page = yield Call("GET", path, params={**_params(**params), "limit": page_size, "offset": offset})
        items = page[key]
        for item in items:
            yield Emit(item)
        offset += len(items)
        if len(items) < page_size or offset >= page["total"]:
            return


def iter_jobs(
    *, workload_id: str | None, client_id: str | None, status: str | None, order: str | None, page_size: int
) -> Op[None]:
    filters = {"workload_id": workload_id, "client_id": client_id, "status": status, "order": order}
    return (yield from iter_pages("/api/jobs", "jobs", filters, page_size))


def get_job(job_id: str) -> Op[JobDetail]:
    return cast(JobDetail, (yield Call("GET", f"/api/jobs/{_segment(job_id)}")))


def wait(
    job_id: str,
    *,
    on_progress: Callable[[JobDetail], Any] | None,
    poll_s: float,
    timeout_s: float | None,
    clock: Callable[[], float] = time.monotonic,
) -> Op[JobDetail]:
    """Poll the job until it is completed, failed or cancelled; ``on_progress(detail)`` on the first answer and on
    every answer that differs from the one before."""
    if poll_s <= 0:
        raise ValueError(f"poll_s must be positive, not {poll_s}")
    deadline = None if timeout_s is None else clock() + timeout_s
    last: JobDetail | None = None
    while True:
        detail = yield from get_job(job_id)
        if on_progress is not None and detail != last:
            yield Notify(on_progress, detail)
        last = detail
        if detail["status"] in TERMINAL:
            return detail
        pause = poll_s
        if deadline is not None:
            left = deadline - clock()
            if left <= 0:
                raise WaitTimeout(
                    f"Job {job_id} is still {detail['status']} after {timeout_s:g} s; wait again, or cancel it "
                    "with cancel_job()."
                )
            pause = min(poll_s, left)
        yield Sleep(pause)


class WaitTimeout(FlywheelError, TimeoutError):
    """``wait()`` gave up: the job was not finished within ``timeout_s`` (it goes on running)."""


def cancel_job(job_id: str) -> Op[JobAction]:
    return cast(JobAction, (yield Call("POST", f"/api/jobs/{_segment(job_id)}/cancel")))


def delete_job(job_id: str) -> Op[JobAction]:
    return cast(JobAction, (yield Call("DELETE", f"/api/jobs/{_segment(job_id)}")))


def report(job_id: str) -> Op[Report]:
    return cast(Report, (yield Call("GET", f"/api/jobs/{_segment(job_id)}/report")))


def _sample_filters(
    candidate: str | None, eval_type: str | None, max_score: float | None, search: str | None
) -> dict[str, Any]:
    return {"candidate": candidate, "eval_type": eval_type, "max_score": max_score, "search": search}


def samples(
    job_id: str,
    *,
    candidate: str | None,
    eval_type: str | None,
    max_score: float | None,
    search: str | None,
    limit: int | None,
    offset: int | None,
) -> Op[SamplePage]:
    params = _params(**_sample_filters(candidate, eval_type, max_score, search), limit=limit, offset=offset)
    return cast(SamplePage, (yield Call("GET", f"/api/jobs/{_segment(job_id)}/samples", params=params)))


def iter_samples(
    job_id: str,
    *,
    candidate: str | None,
    eval_type: str | None,
    max_score: float | None,
    search: str | None,
    page_size: int,
) -> Op[None]:
    path = f"/api/jobs/{_segment(job_id)}/samples"
    filters = _sample_filters(candidate, eval_type, max_score, search)
    return (yield from iter_pages(path, "samples", filters, page_size))


def list_quarantine(
    *,
    source: str | None,
    ingestion_id: str | None,
    reason: str | None,
    order: str | None,
    limit: int | None,
    offset: int | None,
) -> Op[QuarantinePage]:
    params = _params(
        source=source, ingestion_id=ingestion_id, reason=reason, order=order, limit=limit, offset=offset
    )
    return cast(QuarantinePage, (yield Call("GET", "/api/quarantine", params=params)))


def get_quarantined(record_id: int) -> Op[QuarantinedRecord]:
    return cast(QuarantinedRecord, (yield Call("GET", f"/api/quarantine/{_segment(record_id)}")))


def logs(
    records: Mapping[str, Any] | Iterable[Any], *, batch_size: int, max_batch_bytes: int
) -> Op[IngestSummary]:
    """``POST /api/logs`` in batches of at most ``batch_size`` records and about ``max_batch_bytes`` bytes (a
    record larger than that goes alone); records are read lazily, so a generator over a large file works."""
    import orjson

    if not 1 <= batch_size <= MAX_LOG_ITEMS:
        raise ValueError(f"batch_size must be 1 to {MAX_LOG_ITEMS} (the server's limit), not {batch_size}")
    items: Iterable[Any] = [records] if isinstance(records, Mapping) else records
    summary: IngestSummary = {
        "ingestion_ids": [],
        "total": 0,
        "accepted": 0,
        "duplicates": 0,
        "quarantined": 0,
        "quarantine_reasons": {},
        "errors": [],
    }
    reasons: Counter[str] = Counter()
    batch: list[bytes] = []
    size = 2
    first = 0  # index of the batch's first record among all the records

    def send() -> Op[None]:
        result = yield Call("POST", "/api/logs", content=b"[" + b",".join(batch) + b"]")
        summary["ingestion_ids"].append(result["ingestion_id"])
        for key in ("total", "accepted", "duplicates", "quarantined"):
            summary[key] += result[key]  # type: ignore[literal-required]
        reasons.update(result["quarantine_reasons"])
        summary["errors"].extend(
            cast(IngestItemError, {**e, "index": e["index"] + first}) for e in result["errors"]
        )

    for index, record in enumerate(items):
        try:
            encoded = orjson.dumps(record)
        except TypeError as exc:  # orjson.JSONEncodeError
            raise DataError(
                f"Record {index} cannot be sent as JSON: {exc}. Give dicts of JSON values (str, numbers, "
                "bool, None, lists, dicts with string keys)."
            ) from exc
        if batch and (len(batch) >= batch_size or size + len(encoded) + 1 > max_batch_bytes):
            yield from send()
            batch, size, first = [], 2, index
        batch.append(encoded)
        size += len(encoded) + 1
    if batch:
        yield from send()
    summary["quarantine_reasons"] = dict(reasons.most_common())
    return summary


__all__ = [
    "DEFAULT_TIMEOUT_S",
    "LOG_BATCH",
    "LOG_BATCH_BYTES",
    "MAX_LOG_ITEMS",
    "TERMINAL",
    "Call",
    "Connection",
    "Emit",
    "EvalType",
    "JobStatus",
    "Notify",
    "Op",
    "Order",
    "Sleep",
    "Step",
    "WaitTimeout",
    "error_text",
]
