"""The OpenAI-compatible gateway: ``/v1`` of ``flywheel serve`` forwards to the teacher and logs every exchange.

An application changes its base URL (and key) to flywheel's; nothing else. ``POST /v1/chat/completions`` sends the
request body as it came (every field) to ``{upstream}/chat/completions`` with the upstream's key, and answers with the
upstream's status code, body and the headers a client acts on (content type, request id, rate limits,
``retry-after``). A streamed call (``"stream": true``) is relayed chunk by chunk as the upstream sends it; the same
bytes are reassembled into one ChatCompletion for the log. A 2xx exchange becomes a log record in the blueprint
schema, handed to a background sink so the store is never on the request path; failed calls are not logged.

The flywheel API key (``Authorization`` of the caller) never reaches the upstream, and the upstream key is never
logged nor returned. ``X-Flywheel-Workload-Id`` / ``X-Flywheel-Client-Id`` name the record's workload and client.

``gateway.routes`` send some requests elsewhere than ``gateway.upstream``: the first route whose ``models`` holds
the body's ``model`` and whose ``workload_ids`` holds the request's workload. ``GET /v1/models`` lists the models of
every upstream. A caller that goes away cancels its upstream call (the connection to the upstream is closed).

Records leave the request path at once: a bounded queue (:class:`BackgroundSink`) batches them, and a writer thread
(:class:`SpoolingDelivery`) stores the batches. While the store is down, slow or behind, batches wait in a disk spool
(``gateway.spool_dir``, by default ``<FLYWHEEL_HOME>/spool/gateway``) and are replayed in order once it keeps up, and
at the next start-up (:mod:`flywheel.sdk._spool`). A crash loses at most the records still in memory: up to 100
gathered on the event loop (for at most 10 ms), 10,000 queued, the batch of up to 100 being formed and the batch of
up to 100 being stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import SecretStr

from flywheel.config import GatewayConfig, UpstreamConfig, redact_url
from flywheel.sdk._sinks import BackgroundSink, Delivery, Record
from flywheel.sdk._spool import SpoolingDelivery
from flywheel.sdk._stream import StreamAccumulator
from flywheel.service.api._auth import Unauthorized

logger = logging.getLogger("flywheel.gateway")
T = TypeVar("T")
#: Logged records are handed to the sink together, after at most this many seconds or this many records.
GATHER_S = 0.01
GATHER_RECORDS = 100
#: What a failed upstream call raises: aiohttp's errors, and TimeoutError for its connect and read timeouts.
_UPSTREAM_ERRORS = (aiohttp.ClientError, TimeoutError)

WORKLOAD_HEADER = "x-flywheel-workload-id"
CLIENT_HEADER = "x-flywheel-client-id"
#: Response headers passed back to the caller as the upstream sent them.
_PASSED_HEADERS = frozenset({"content-type", "x-request-id", "retry-after"})
_PASSED_PREFIXES = ("x-ratelimit-",)
#: Request headers forwarded to the upstream besides its key (the caller's ``Authorization`` is flywheel's).
_FORWARDED_HEADERS = ("content-type", "accept")

router = APIRouter(tags=["gateway"])


@dataclass(frozen=True)
class Upstream:
    """One OpenAI-compatible server the gateway forwards to, with the headers that carry its key."""

    base_url: str
    headers: dict[str, str]

    @classmethod
    def of(cls, config: UpstreamConfig, api_key: SecretStr | None) -> Upstream:
        headers = {"authorization": f"Bearer {api_key.get_secret_value()}"} if api_key is not None else {}
        return cls(config.base_url.rstrip("/"), headers)

    def __repr__(self) -> str:  # never show the key
        return f"Upstream({redact_url(self.base_url)!r})"


@dataclass
class Gateway:
    """What the ``/v1`` routes share for the life of the app: one HTTP client, the upstreams, one log sink and
    the disk spool that stores its batches."""

    config: GatewayConfig
    http: aiohttp.ClientSession
    sink: BackgroundSink
    spool: SpoolingDelivery
    upstream: Upstream
    #: One per ``config.routes`` entry, in order.
    route_upstreams: list[Upstream]
    #: Records logged on the event loop and not yet handed to the sink (at most GATHER_RECORDS, for GATHER_S).
    _gathered: list[Record] = field(default_factory=list)
    _hand_over_at: asyncio.TimerHandle | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    def log(self, record: Record) -> None:
        """Log ``record`` (on the event loop). Records are gathered for up to GATHER_S seconds or GATHER_RECORDS
        records and handed to the sink together: waking the sink's thread once per record cost a quarter of the
        event loop's time under load (measured with py-spy at 16 concurrent callers)."""
        self._gathered.append(record)
        if len(self._gathered) >= GATHER_RECORDS:
            self._hand_over()
        elif self._hand_over_at is None:
            self._loop = asyncio.get_running_loop()
            self._hand_over_at = self._loop.call_later(GATHER_S, self._hand_over)

    def _hand_over(self) -> None:
        if self._hand_over_at is not None:
            self._hand_over_at.cancel()
            self._hand_over_at = None
        records, self._gathered = self._gathered, []
        self.sink.submit_many(records)

    def upstream_for(self, model: Any, workload_id: str) -> Upstream:
        """The first route's upstream that matches, else the default one."""
        name = model if isinstance(model, str) else None
        for route, upstream in zip(self.config.routes, self.route_upstreams, strict=True):
            if route.matches(name, workload_id):
                return upstream
        return self.upstream

    @property
    def upstreams(self) -> list[Upstream]:
        """Every distinct upstream, the default first."""
        seen: dict[tuple[str, tuple[tuple[str, str], ...]], Upstream] = {}
        for upstream in (self.upstream, *self.route_upstreams):
            seen.setdefault((upstream.base_url, tuple(sorted(upstream.headers.items()))), upstream)
        return list(seen.values())

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until every record logged so far is stored (or spooled while the store is down); False on
        timeout. For tests and benchmarks: the request path never waits for the store."""
        deadline = time.monotonic() + timeout
        loop = self._loop
        if loop is not None and loop.is_running():  # hand the gathered records over on the loop's own thread
            handed = threading.Event()

            def hand_over() -> None:
                self._hand_over()
                handed.set()

            loop.call_soon_threadsafe(hand_over)
            if not handed.wait(timeout):
                return False
        return self.sink.flush(max(0.0, deadline - time.monotonic())) and self.spool.wait_idle(
            max(0.0, deadline - time.monotonic())
        )

    async def aclose(self, timeout: float = 10.0) -> None:
        """Close the HTTP client and store (or spool) the records still queued, off the event loop."""
        await self.http.close()
        self._hand_over()
        await asyncio.to_thread(self.sink.close, timeout)
        await asyncio.to_thread(self.spool.close, timeout)


def start_gateway(
    config: GatewayConfig,
    api_keys: list[SecretStr | None],
    deliver: Callable[[list[Record]], Delivery],
    *,
    spool_dir: str | os.PathLike[str] | None = None,
) -> Gateway:
    """The gateway's shared state: ``deliver(batch)`` stores records (it runs in the spool's writer thread).

    ``api_keys`` holds the key of ``config.upstream`` and then one per route (None: send no key). Records wait in
    ``config.spool_dir``, else ``spool_dir``, else ``$FLYWHEEL_HOME/spool/gateway`` while ``deliver`` raises or is
    busy; the directory is created, and segments left by a previous process are replayed in the background. A
    store that failed is tried again every ``config.spool_retry_s`` seconds.
    """
    upstreams = [
        Upstream.of(upstream, key)
        for upstream, key in zip(
            [config.upstream, *(route.upstream for route in config.routes)], api_keys, strict=True
        )
    ]
    directory = Path(config.spool_dir or spool_dir or default_spool_dir()).expanduser()
    spool = SpoolingDelivery(deliver, directory, retry_interval=config.spool_retry_s)
    spool.start()
    # Every call goes to a handful of upstreams: keep enough connections alive for a busy app's concurrency.
    # aiohttp rather than httpx for the upstream: measured at 16 concurrent callers, httpx's connection pool cost
    # ~1.2 ms of CPU per call (its bookkeeping grows with connections × waiting requests), aiohttp's ~0.15 ms.
    # No cap on connections (the callers' concurrency is the cap); timeouts to connect and between bytes.
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=config.timeout_s, sock_read=config.timeout_s),
        skip_auto_headers=("User-Agent",),
    )
    sink = BackgroundSink(spool, destination="the flywheel store (gateway)")
    return Gateway(
        config=config,
        http=http,
        sink=sink,
        spool=spool,
        upstream=upstreams[0],
        route_upstreams=upstreams[1:],
    )


def upstream_key_envs(config: GatewayConfig) -> list[tuple[str, str | None]]:
    """``(config key path, api_key_env)`` of the default upstream and then of each route's, in order."""
    return [("gateway.upstream.api_key_env", config.upstream.api_key_env)] + [
        (f"gateway.routes[{i}].upstream.api_key_env", route.upstream.api_key_env)
        for i, route in enumerate(config.routes)
    ]


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


def mount_gateway(app: FastAPI, require_api_key: Callable[[Request], Any]) -> None:
    """Serve the routes under ``/v1`` behind flywheel's key check, whose 401 takes the OpenAI error shape there
    (OpenAI clients read ``error.message``)."""

    async def require_key(request: Request) -> None:
        try:
            await require_api_key(request)
        except Unauthorized as exc:
            raise _OpenAIError(exc.status_code, str(exc.detail), "invalid_request_error", exc.code) from None

    async def openai_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, _OpenAIError)
        return JSONResponse(
            {"error": {"message": exc.message, "type": exc.type, "param": None, "code": exc.code}},
            status_code=exc.status,
            headers={"WWW-Authenticate": "Bearer"} if exc.status == 401 else None,
        )

    app.add_exception_handler(_OpenAIError, openai_error)
    app.include_router(router, prefix="/v1", dependencies=[Depends(require_key)])


class _OpenAIError(Exception):
    def __init__(self, status: int, message: str, type: str, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code = status, message, type, code


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
    workload_id = request.headers.get(WORKLOAD_HEADER) or gateway.config.default_workload_id
    upstream = gateway.upstream_for(payload.get("model") if isinstance(payload, dict) else None, workload_id)

    def log(completion: Any) -> None:
        if isinstance(payload, dict) and isinstance(completion, dict):
            client_id = (
                request.headers.get(CLIENT_HEADER)
                or getattr(request.state, "api_key_name", None)
                or gateway.config.default_client_id
            )
            gateway.log(
                {
                    "timestamp": started,
                    "workload_id": workload_id,
                    "client_id": client_id,
                    "request": payload,
                    "response": completion,
                }
            )

    call = _exchange(
        gateway.http, f"{upstream.base_url}/chat/completions", body, _upstream_headers(upstream, request)
    )
    try:
        exchange = await _unless_caller_leaves(request, call)
    except _UPSTREAM_ERRORS as exc:
        return _upstream_failure(gateway, upstream, exc)
    if exchange is None:
        return Response(status_code=499)  # nobody is listening; the upstream call was cancelled
    reply, content = exchange
    if content is None:
        return StreamingResponse(
            _relay(gateway, upstream, reply, log),
            status_code=reply.status,
            headers=_passed_headers(reply.headers),
        )
    if reply.ok:
        try:
            log(orjson.loads(content))
        except orjson.JSONDecodeError:
            logger.warning("gateway: the upstream's 2xx answer is not JSON; not logged")
    return Response(content, status_code=reply.status, headers=_passed_headers(reply.headers))


async def _exchange(
    http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> tuple[aiohttp.ClientResponse, bytes | None]:
    """POST ``body``; a successful event stream comes back open with no content (to be relayed), anything else
    read whole and released."""
    reply = await http.post(url, data=body, headers=headers)
    if reply.ok and reply.content_type == "text/event-stream":
        return reply, None
    try:
        return reply, await reply.read()
    finally:
        reply.release()


async def _fetch(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> _Fetched:
    async with http.get(url, headers=headers) as reply:
        return _Fetched(reply.status, reply.headers, await reply.read())


@dataclass(frozen=True)
class _Fetched:
    status: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@router.get("/models", summary="The models of every upstream")
async def models(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    upstreams = gateway.upstreams
    replies = await asyncio.gather(
        *(_fetch(gateway.http, f"{u.base_url}/models", u.headers) for u in upstreams),
        return_exceptions=True,
    )
    if len(upstreams) == 1:  # one upstream: its answer, whatever it is
        reply = replies[0]
        if isinstance(reply, _UPSTREAM_ERRORS):
            return _upstream_failure(gateway, upstreams[0], reply)
        if isinstance(reply, BaseException):
            raise reply
        return Response(reply.content, status_code=reply.status, headers=_passed_headers(reply.headers))
    models: dict[str, Any] = {}
    for upstream, reply in zip(upstreams, replies, strict=True):
        listed = _model_list(reply)
        if listed is None:
            logger.warning("gateway: no model list from the upstream %s", redact_url(upstream.base_url))
            continue
        for model in listed:
            models.setdefault(model["id"], model)
    if not models and any(_model_list(reply) is None for reply in replies):
        first = replies[0]
        if isinstance(first, _UPSTREAM_ERRORS):
            return _upstream_failure(gateway, upstreams[0], first)
        if isinstance(first, _Fetched):
            return Response(first.content, status_code=first.status, headers=_passed_headers(first.headers))
    return JSONResponse({"object": "list", "data": list(models.values())})


# -- helpers -------------------------------------------------------------------------------------------------------


async def _unless_caller_leaves(request: Request, call: Awaitable[T]) -> T | None:
    """``await call`` — or cancel it and return None as soon as the caller disconnects.

    The request body has been read, so the next ASGI message is the disconnect. Cancelling an aiohttp call closes
    its connection, which is how the upstream learns that nobody wants the answer any more.
    """
    work = asyncio.ensure_future(call)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait((work, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if work.done():
        return work.result()
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError, *_UPSTREAM_ERRORS):
        await work
    logger.info("gateway: the caller went away; the upstream call was cancelled")
    return None


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _relay(
    gateway: Gateway, upstream: Upstream, reply: aiohttp.ClientResponse, log: Callable[[Any], None]
) -> AsyncIterator[bytes]:
    """Yield the upstream's bytes as they arrive; log the reassembled completion once the stream has finished.

    If the caller goes away, the server cancels this generator and ``finally`` closes the upstream connection.
    """
    events = _SSEReader()
    finished = False
    try:
        async for data in reply.content.iter_any():
            yield data
            events.feed(data)
        finished = True
    except _UPSTREAM_ERRORS as exc:
        # Too late for a status code: end the stream with an error event, which OpenAI clients raise.
        logger.warning("gateway: the upstream stream broke off: %s", type(exc).__name__)
        error = _error_body(gateway, upstream, exc)
        yield b"data: " + orjson.dumps(error) + b"\n\n"
        return
    finally:
        # A finished stream's connection goes back to the pool; one cut short is closed, so the upstream stops.
        if finished:
            reply.release()
        else:
            reply.close()
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


def _upstream_headers(upstream: Upstream, request: Request) -> dict[str, str]:
    headers = {k: v for k in _FORWARDED_HEADERS if (v := request.headers.get(k))}
    headers.update(upstream.headers)
    return headers


def _model_list(reply: _Fetched | BaseException) -> list[dict[str, Any]] | None:
    """The ``data`` of a successful ``/models`` answer (entries with an ``id``), else None."""
    if not isinstance(reply, _Fetched) or not reply.ok:
        return None
    try:
        data = orjson.loads(reply.content).get("data")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if not isinstance(data, list):
        return None
    return [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]


def _passed_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        k: v
        for k, v in headers.items()
        if k.lower() in _PASSED_HEADERS or k.lower().startswith(_PASSED_PREFIXES)
    }


def _error_body(gateway: Gateway, upstream: Upstream, exc: BaseException) -> dict[str, Any]:
    where = redact_url(upstream.base_url)
    if isinstance(exc, TimeoutError):
        message = (
            f"The upstream {where} did not answer within {gateway.config.timeout_s:g} s "
            "(gateway.timeout_s in the flywheel configuration)."
        )
        code = "upstream_timeout"
    else:
        message = f"The upstream {where} could not be reached ({type(exc).__name__}); check gateway.upstream."
        code = "upstream_unreachable"
    return {"error": {"message": message, "type": "upstream_error", "code": code}}


def _upstream_failure(gateway: Gateway, upstream: Upstream, exc: BaseException) -> JSONResponse:
    status = 504 if isinstance(exc, TimeoutError) else 502
    logger.warning("gateway: upstream request failed: %s", type(exc).__name__)
    return JSONResponse(_error_body(gateway, upstream, exc), status_code=status)
