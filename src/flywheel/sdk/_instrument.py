"""Wrapping an OpenAI client instance so that its chat completions are logged in the blueprint schema.

Only the instance's ``chat.completions.create`` is replaced (an attribute on that one resource object), so other
clients, the class and every other endpoint are untouched. Everything the wrapper does besides calling the original
method is guarded: a failure while capturing or handing over a record is logged and counted, and the caller gets
exactly what the original method returned or raised.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from flywheel.errors import ConfigError
from flywheel.sdk._sinks import HttpSink, LogSink, Record, StoreSink
from flywheel.sdk._stream import StreamAccumulator

logger = logging.getLogger("flywheel.sdk")

ClientT = TypeVar("ClientT")

#: ``create`` keyword arguments that configure the HTTP call, not the model request (and may hold secrets).
_TRANSPORT_KWARGS = frozenset({"extra_headers", "extra_query", "timeout"})
#: Attribute on the wrapper that points back to its :class:`Instrumentation`.
_MARKER = "__flywheel_instrumentation__"


class _Skip:
    """Marks a value that has no JSON form and is left out of the record."""


_SKIP = _Skip()


def to_json(value: Any) -> Any:
    """``value`` as plain JSON data, or ``_SKIP`` when it has none (pydantic models are dumped as the SDK sends them)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            converted = to_json(item)
            if converted is not _SKIP:
                out[str(key)] = converted
        return out
    if isinstance(value, list | tuple):
        return [None if (c := to_json(item)) is _SKIP else c for item in value]
    if type(value).__module__.startswith("openai") and type(value).__name__ in ("Omit", "NotGiven"):
        return _SKIP
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        # The same dump the OpenAI SDK uses for request bodies: only the fields that were set.
        return to_json(model_dump(mode="json", by_alias=True, exclude_unset=True))
    return _SKIP


def request_to_json(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The model request a ``create(**kwargs)`` call sends: its parameters plus ``extra_body``, without transport options."""
    request: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in _TRANSPORT_KWARGS or key == "extra_body":
            continue
        converted = to_json(value)
        if converted is not _SKIP:
            request[key] = converted
    extra_body = to_json(kwargs.get("extra_body"))
    if isinstance(extra_body, dict):
        request.update(extra_body)  # the SDK merges extra_body into the JSON body the same way
    return request


def _materialize(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Turn one-shot iterables (a generator of messages) into lists, so both the SDK and the log can read them."""
    for key, value in kwargs.items():
        if isinstance(value, Iterator):
            kwargs[key] = list(value)
    return kwargs


@dataclass(frozen=True)
class InstrumentationStats:
    """Counters of one instrumented client (a snapshot)."""

    #: Records handed to the sink.
    captured: int = 0
    #: Calls whose record could not be built or handed over (the call itself succeeded).
    capture_errors: int = 0
    #: Streams that ended before every choice finished (not logged).
    incomplete_streams: int = 0
    #: Calls whose result is neither a ChatCompletion nor a stream of chunks (e.g. ``with_raw_response``).
    not_logged: int = 0


class Instrumentation:
    """The logging attached to one client: its ids, its sink and its counters."""

    def __init__(self, workload_id: str, client_id: str, sink: LogSink, *, owns_sink: bool) -> None:
        self.workload_id = workload_id
        self.client_id = client_id
        self.sink = sink
        self._owns_sink = owns_sink
        self._lock = threading.Lock()
        self._counts = {"captured": 0, "capture_errors": 0, "incomplete_streams": 0, "not_logged": 0}
        self._restore: Any = None

    @property
    def stats(self) -> InstrumentationStats:
        """A snapshot of the counters."""
        with self._lock:
            return InstrumentationStats(**self._counts)

    def flush(self, timeout: float | None = None) -> bool:
        """Deliver every record captured so far; False if the sink did not finish within ``timeout`` seconds."""
        try:
            return self.sink.flush(timeout)
        except Exception as exc:
            logger.warning("flywheel: flushing the log sink failed: %s", exc)
            return False

    def close(self) -> None:
        """Stop logging: restore the client's original method and close the sink if ``instrument`` created it."""
        if self._restore is not None:
            self._restore()
            self._restore = None
        if self._owns_sink:
            try:
                self.sink.close()
            except Exception as exc:
                logger.warning("flywheel: closing the log sink failed: %s", exc)

    # -- capture --------------------------------------------------------------------------------------------

    def _count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def _emit(self, request: dict[str, Any], response: dict[str, Any], started: float) -> None:
        record: Record = {
            "timestamp": started,
            "workload_id": self.workload_id,
            "client_id": self.client_id,
            "request": request,
            "response": response,
        }
        try:
            self.sink.submit(record)
        except Exception as exc:
            self._failed("handing a record to the sink", exc)
            return
        self._count("captured")

    def _failed(self, what: str, exc: BaseException) -> None:
        self._count("capture_errors")
        logger.warning(
            "flywheel: %s failed; the call itself is unaffected: %s: %s", what, type(exc).__name__, exc
        )

    def _before(self, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        # Outside the guard: an error from the caller's own generator must reach the caller, as it would unwrapped.
        _materialize(kwargs)
        try:
            return request_to_json(kwargs)
        except Exception as exc:
            self._failed("capturing the request", exc)
            return None

    def _after(
        self, request: dict[str, Any] | None, result: Any, started: float, stream_types: tuple[type, ...]
    ) -> Any:
        """Log a finished completion, or arrange for a stream to be logged when it ends. Returns ``result``."""
        if request is None:
            return result
        try:
            if isinstance(result, stream_types):
                inner = getattr(result, "_iterator", None)
                if inner is None:  # a future SDK reorganised its streams: keep working, just without logging
                    self._count("not_logged")
                    return result
                capture = _StreamCapture(self, request, started)
                stream: Any = result
                # Swapping the stream's own iterator keeps the object the caller gets (type, .response, close()).
                stream._iterator = (
                    _logged_async_chunks(inner, capture)
                    if hasattr(inner, "__anext__")
                    else _logged_chunks(inner, capture)
                )
            elif hasattr(result, "choices") and callable(getattr(result, "model_dump", None)):
                self._emit(request, to_json(result), started)
            else:
                self._count("not_logged")
        except Exception as exc:
            self._failed("capturing the response", exc)
        return result


class _StreamCapture:
    """Collects one stream's chunks and logs the completion when the stream ends."""

    def __init__(self, owner: Instrumentation, request: dict[str, Any], started: float) -> None:
        self._owner = owner
        self._request = request
        self._started = started
        self._chunks: StreamAccumulator | None = StreamAccumulator()

    def add(self, chunk: Any) -> None:
        if self._chunks is None:
            return
        try:
            self._chunks.add(to_json(chunk))
        except Exception as exc:
            self._chunks = None  # stop collecting; this stream will not be logged
            self._owner._failed("reassembling a stream", exc)

    def end(self, exhausted: bool) -> None:
        """``exhausted``: the server ended the stream; otherwise the caller stopped early or it broke."""
        chunks, self._chunks = self._chunks, None
        if chunks is None:
            return
        try:
            if exhausted or chunks.complete:
                self._owner._emit(self._request, chunks.completion(), self._started)
            else:
                self._owner._count("incomplete_streams")
        except Exception as exc:
            self._owner._failed("logging a stream", exc)


def _logged_chunks(inner: Iterator[Any], capture: _StreamCapture) -> Iterator[Any]:
    exhausted = False
    try:
        for chunk in inner:
            capture.add(chunk)
            yield chunk
        exhausted = True
    finally:
        capture.end(exhausted)


async def _logged_async_chunks(inner: AsyncIterator[Any], capture: _StreamCapture) -> AsyncIterator[Any]:
    exhausted = False
    try:
        async for chunk in inner:
            capture.add(chunk)
            yield chunk
        exhausted = True
    finally:
        capture.end(exhausted)


def instrumentation(client: Any) -> Instrumentation | None:
    """The :class:`Instrumentation` of an instrumented client, or None."""
    try:
        return getattr(client.chat.completions.create, _MARKER, None)
    except AttributeError:
        return None


def _build_sink(
    server_url: str | None,
    api_key: str | None,
    database_url: str | None,
    sink: LogSink | None,
    options: dict[str, Any],
) -> LogSink:
    given = [
        name
        for name, value in (("server_url", server_url), ("database_url", database_url), ("sink", sink))
        if value
    ]
    if len(given) != 1:
        raise ConfigError(
            "flywheel.instrument needs exactly one destination for the logs: server_url='http://flywheel:8000' "
            f"(a flywheel server), database_url='sqlite:///path/flywheel.db' (a local store) or sink=…; got {given or 'none'}."
        )
    if sink is not None:
        return sink
    if server_url is not None:
        return HttpSink(server_url, api_key=api_key, **options)
    assert database_url is not None
    return StoreSink(database_url, **options)


def instrument(
    client: ClientT,
    *,
    workload_id: str,
    client_id: str,
    server_url: str | None = None,
    api_key: str | None = None,
    database_url: str | None = None,
    sink: LogSink | None = None,
    batch_size: int = 100,
    max_queue: int = 10_000,
    flush_interval: float = 1.0,
) -> ClientT:
    """Log every ``client.chat.completions.create`` call of ``client`` in the blueprint log schema.

    ``client`` is an ``openai.OpenAI`` or ``openai.AsyncOpenAI`` instance (or a subclass such as ``AzureOpenAI``);
    it is changed in place and returned. Each call becomes one record ``{timestamp, workload_id, client_id,
    request, response}``: ``request`` holds the call's parameters (messages, tools, model, sampling parameters and
    ``extra_body``; not ``extra_headers``/``extra_query``/``timeout``), ``response`` the ChatCompletion. A streamed
    call (``stream=True``) reaches the caller unchanged; its chunks are reassembled into one ChatCompletion that is
    logged when the stream ends (a stream abandoned before every choice finished is not logged). Clients made from
    it with ``with_options``/``copy`` are logged too, and so is the ``chat.completions.stream`` helper (it calls
    ``create``). Not logged: ``chat.completions.parse`` and ``with_raw_response``/``with_streaming_response`` calls
    (they still work).

    Destination, exactly one of: ``server_url`` (a flywheel server; ``api_key`` is sent as a bearer token),
    ``database_url`` (a local store, written directly) or ``sink`` (any :class:`LogSink`). The built-in sinks send
    from a background thread in batches of ``batch_size`` at least every ``flush_interval`` seconds, hold at most
    ``max_queue`` records (then drop and count) and flush at exit. Logging never raises into the caller's request;
    failures are counted in :func:`instrumentation` ``(client).stats`` and logged on the ``flywheel.sdk`` logger.

    Raises :class:`~flywheel.errors.ConfigError` for a missing or ambiguous destination, empty ids or a client
    that is already instrumented or has no ``chat.completions.create``.
    """
    for name, value in (("workload_id", workload_id), ("client_id", client_id)):
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"flywheel.instrument needs a non-empty {name} string; got {value!r}.")
    try:
        completions = client.chat.completions  # type: ignore[attr-defined]
        original = completions.create
    except AttributeError:
        raise ConfigError(
            f"flywheel.instrument expects an openai.OpenAI or openai.AsyncOpenAI client; got {type(client).__name__}."
        ) from None
    if getattr(original, _MARKER, None) is not None:
        raise ConfigError(
            "This client is already instrumented; call flywheel.sdk.uninstrument(client) first."
        )

    options = {"batch_size": batch_size, "max_queue": max_queue, "flush_interval": flush_interval}
    log_sink = _build_sink(server_url, api_key, database_url, sink, options)
    instr = Instrumentation(workload_id, client_id, log_sink, owns_sink=sink is None)
    instr._restore = _attach(client, instr)
    return client


def _attach(client: Any, instr: Instrumentation) -> Callable[[], None]:
    """Install the logging wrapper on ``client`` (and on the copies it makes); return how to undo it."""
    import openai

    stream_types: tuple[type, ...] = (openai.Stream, openai.AsyncStream)
    completions = client.chat.completions
    original = completions.create
    wrapper: Any
    if isinstance(completions, openai.resources.chat.AsyncCompletions):

        @functools.wraps(original)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.time()
            request = instr._before(kwargs)
            result = await original(*args, **kwargs)
            return instr._after(request, result, started, stream_types)

    else:

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.time()
            request = instr._before(kwargs)
            result = original(*args, **kwargs)
            return instr._after(request, result, started, stream_types)

    setattr(wrapper, _MARKER, instr)
    # An instance attribute shadows the class's method for this one resource object only.
    completions.create = wrapper

    # ``client.with_options(timeout=…)`` (an alias of ``copy``) builds a new client with fresh resources; without
    # this, calls made through such copies would silently go unlogged. Copies share this instrumentation.
    original_copy = getattr(client, "copy", None)
    copy_wrapper: Any = None
    if callable(original_copy):

        @functools.wraps(original_copy)
        def copy_wrapper(*args: Any, **kwargs: Any) -> Any:
            new_client = original_copy(*args, **kwargs)
            try:
                _attach(new_client, instr)
            except Exception as exc:
                instr._failed("instrumenting a copy of the client", exc)
            return new_client

        client.copy = copy_wrapper
        client.with_options = copy_wrapper

    def restore() -> None:
        if completions.__dict__.get("create") is wrapper:
            del completions.create
        for name in ("copy", "with_options"):
            if copy_wrapper is not None and client.__dict__.get(name) is copy_wrapper:
                delattr(client, name)

    return restore


def uninstrument(client: Any) -> None:
    """Undo :func:`instrument`: flush and close the sink it created and restore the original method."""
    instr = instrumentation(client)
    if instr is not None:
        instr.close()


def flush(client: Any, timeout: float | None = None) -> bool:
    """Deliver every record ``client`` has captured so far; False on timeout or when it is not instrumented."""
    instr = instrumentation(client)
    return instr.flush(timeout) if instr is not None else False
