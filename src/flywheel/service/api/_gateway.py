"""The OpenAI-compatible gateway: ``/v1`` of ``flywheel serve`` forwards to the teacher and logs every exchange.

An application changes its base URL (and key) to flywheel's; nothing else. ``POST /v1/chat/completions`` sends the
request body as it came (every field) to ``{upstream}/chat/completions`` with the upstream's key, and answers with the
upstream's status code, body and the headers a client acts on (content type, request id, rate limits,
``retry-after``). A streamed call (``"stream": true``) is relayed chunk by chunk as the upstream sends it; the same
bytes are reassembled into one ChatCompletion for the log. A 2xx exchange becomes a log record in the blueprint
schema, handed to a background sink so the store is never on the request path; failed calls are not logged.

The flywheel API key (``Authorization`` of the caller) never reaches the upstream, and the upstream key is never
logged nor returned. ``X-Flywheel-Workload-Id`` / ``X-Flywheel-Client-Id`` name the record's workload and client.

While the store is down, records wait in a disk spool (``gateway.spool_dir``, by default
``<FLYWHEEL_HOME>/spool/gateway``) and are replayed in order once it is back, and at the next start-up
(:mod:`flywheel.sdk._spool`). A crash loses at most the records still in the sink's memory: 10,000 queued plus the
batch of up to 100 in hand.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import SecretStr

from flywheel.config import GatewayConfig, redact_url
from flywheel.sdk._sinks import BackgroundSink, Delivery, Record
from flywheel.sdk._spool import SpoolingDelivery
from flywheel.sdk._stream import StreamAccumulator

logger = logging.getLogger("flywheel.gateway")

WORKLOAD_HEADER = "x-flywheel-workload-id"
CLIENT_HEADER = "x-flywheel-client-id"
#: Response headers passed back to the caller as the upstream sent them.
_PASSED_HEADERS = frozenset({"content-type", "x-request-id", "retry-after"})
_PASSED_PREFIXES = ("x-ratelimit-",)
#: Request headers forwarded to the upstream besides its key (the caller's ``Authorization`` is flywheel's).
_FORWARDED_HEADERS = ("content-type", "accept")

router = APIRouter(tags=["gateway"])


@dataclass
class Gateway:
    """What the ``/v1`` routes share for the life of the app: one HTTP client, one log sink and its disk spool."""

    config: GatewayConfig
    http: httpx.AsyncClient
    sink: BackgroundSink
    spool: SpoolingDelivery
    upstream_headers: dict[str, str]

    @property
    def base_url(self) -> str:
        return self.config.upstream.base_url.rstrip("/")

    async def aclose(self, timeout: float = 10.0) -> None:
        """Close the HTTP client and deliver (or spool) the records still queued, off the event loop."""
        await self.http.aclose()
        await asyncio.to_thread(self.sink.close, timeout)
        await asyncio.to_thread(self.spool.close, timeout)


def start_gateway(
    config: GatewayConfig,
    api_key: SecretStr | None,
    deliver: Callable[[list[Record]], Delivery],
    *,
    spool_dir: str | os.PathLike[str] | None = None,
    spool_retry_interval: float = 5.0,
) -> Gateway:
    """The gateway's shared state: ``deliver(batch)`` stores records (it runs in the sink's or the spool's thread).

    Records wait in ``config.spool_dir``, else ``spool_dir``, else ``$FLYWHEEL_HOME/spool/gateway`` while
    ``deliver`` raises; the directory is created, and segments left by a previous process are replayed in the
    background. ``spool_retry_interval`` (seconds) is how often a down store is tried again.
    """
    headers = {"authorization": f"Bearer {api_key.get_secret_value()}"} if api_key is not None else {}
    directory = Path(config.spool_dir or spool_dir or default_spool_dir()).expanduser()
    spool = SpoolingDelivery(deliver, directory, retry_interval=spool_retry_interval)
    spool.start()
    http = httpx.AsyncClient(timeout=httpx.Timeout(config.timeout_s))
    sink = BackgroundSink(spool, destination="the flywheel store (gateway)")
    return Gateway(config=config, http=http, sink=sink, spool=spool, upstream_headers=headers)


def default_spool_dir() -> Path:
    """``<FLYWHEEL_HOME>/spool/gateway``, with ``FLYWHEEL_HOME`` read as :class:`flywheel.config.Settings` reads it.

    The app should pass ``settings.home`` instead (``spool_dir=``), so that settings built from another
    environment than the process's are honoured; this fallback serves callers that do not.
    """
    return Path(os.environ.get("FLYWHEEL_HOME") or ".flywheel").expanduser() / "spool" / "gateway"


def store_delivery(engine: Any) -> Callable[[list[Record]], Delivery]:
    """Deliver batches into ``engine``'s store through normal ingestion (validation, quarantine, dedup)."""

    def deliver(batch: list[Record]) -> Delivery:
        from flywheel.pipeline.ingest import ingest_objects

        report = ingest_objects(engine, batch, source="gateway")
        return Delivery(
            stored=report.accepted + report.duplicates,
            quarantined=report.quarantined,
            reasons=dict(report.quarantine_reasons),
        )

    return deliver


# -- routes --------------------------------------------------------------------------------------------------------


@router.post("/chat/completions", summary="OpenAI chat completions, forwarded to the upstream and logged")
async def chat_completions(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    started = time.time()
    body = await request.body()
    try:
        payload: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None  # forwarded anyway: the upstream says what is wrong with it, in its own words
    upstream = gateway.http.build_request(
        "POST",
        f"{gateway.base_url}/chat/completions",
        content=body,
        headers=_upstream_headers(gateway, request),
    )
    try:
        reply = await gateway.http.send(upstream, stream=True)
    except httpx.HTTPError as exc:
        return _upstream_failure(gateway, exc)

    def log(completion: Any) -> None:
        if isinstance(payload, dict) and isinstance(completion, dict):
            gateway.sink.submit(
                {
                    "timestamp": started,
                    "workload_id": request.headers.get(WORKLOAD_HEADER) or gateway.config.default_workload_id,
                    "client_id": request.headers.get(CLIENT_HEADER) or gateway.config.default_client_id,
                    "request": payload,
                    "response": completion,
                }
            )

    ok = 200 <= reply.status_code < 300
    if ok and reply.headers.get("content-type", "").startswith("text/event-stream"):
        return StreamingResponse(
            _relay(gateway, reply, log),
            status_code=reply.status_code,
            headers=_passed_headers(reply.headers),
        )
    try:
        content = await reply.aread()
    except httpx.HTTPError as exc:
        return _upstream_failure(gateway, exc)
    finally:
        await reply.aclose()
    if ok:
        try:
            log(orjson.loads(content))
        except orjson.JSONDecodeError:
            logger.warning("gateway: the upstream's 2xx answer is not JSON; not logged")
    return Response(content, status_code=reply.status_code, headers=_passed_headers(reply.headers))


@router.get("/models", summary="The upstream's model list")
async def models(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    try:
        reply = await gateway.http.get(f"{gateway.base_url}/models", headers=gateway.upstream_headers)
    except httpx.HTTPError as exc:
        return _upstream_failure(gateway, exc)
    return Response(reply.content, status_code=reply.status_code, headers=_passed_headers(reply.headers))


# -- helpers -------------------------------------------------------------------------------------------------------


async def _relay(gateway: Gateway, reply: httpx.Response, log: Callable[[Any], None]) -> AsyncIterator[bytes]:
    """Yield the upstream's bytes as they arrive; log the reassembled completion once the stream has finished.

    If the caller goes away, the server cancels this generator and ``finally`` closes the upstream connection.
    """
    events = _SSEReader()
    try:
        async for data in reply.aiter_bytes():
            yield data
            events.feed(data)
    except httpx.HTTPError as exc:
        # Too late for a status code: end the stream with an error event, which OpenAI clients raise.
        logger.warning("gateway: the upstream stream broke off: %s", type(exc).__name__)
        error = _error_body(gateway, exc)
        yield b"data: " + orjson.dumps(error) + b"\n\n"
        return
    finally:
        await reply.aclose()
    if events.accumulator.complete:
        log(events.accumulator.completion())
    else:
        logger.warning("gateway: a stream ended before every choice finished; not logged")


class _SSEReader:
    """Feeds the ``data:`` events of a server-sent-event byte stream to a :class:`StreamAccumulator`.

    It never raises: an event it cannot read is skipped, since the caller's stream matters more than the log.
    """

    def __init__(self) -> None:
        self.accumulator = StreamAccumulator()
        self._buffer = b""
        self._data: list[bytes] = []

    def feed(self, data: bytes) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            line = line.rstrip(b"\r")
            if not line:
                self._dispatch()
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)

    def _dispatch(self) -> None:
        data, self._data = b"\n".join(self._data), []
        if not data or data == b"[DONE]":
            return
        try:
            chunk = orjson.loads(data)
            if isinstance(chunk, dict):
                self.accumulator.add(chunk)
        except Exception as exc:  # a malformed event must not break the relay
            logger.debug("gateway: skipped an unreadable stream event: %s", exc)


def _upstream_headers(gateway: Gateway, request: Request) -> dict[str, str]:
    headers = {k: v for k in _FORWARDED_HEADERS if (v := request.headers.get(k))}
    headers.update(gateway.upstream_headers)
    return headers


def _passed_headers(headers: httpx.Headers) -> dict[str, str]:
    return {
        k: v
        for k, v in headers.items()
        if k.lower() in _PASSED_HEADERS or k.lower().startswith(_PASSED_PREFIXES)
    }


def _error_body(gateway: Gateway, exc: httpx.HTTPError) -> dict[str, Any]:
    upstream = redact_url(gateway.base_url)
    if isinstance(exc, httpx.TimeoutException):
        message = (
            f"The upstream {upstream} did not answer within {gateway.config.timeout_s:g} s "
            "(gateway.timeout_s in the flywheel configuration)."
        )
        code = "upstream_timeout"
    else:
        message = (
            f"The upstream {upstream} could not be reached ({type(exc).__name__}); check gateway.upstream."
        )
        code = "upstream_unreachable"
    return {"error": {"message": message, "type": "upstream_error", "code": code}}


def _upstream_failure(gateway: Gateway, exc: httpx.HTTPError) -> JSONResponse:
    status = 504 if isinstance(exc, httpx.TimeoutException) else 502
    logger.warning("gateway: upstream request failed: %s", type(exc).__name__)
    return JSONResponse(_error_body(gateway, exc), status_code=status)
