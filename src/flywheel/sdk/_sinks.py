"""Where instrumented calls' records go: a flywheel server over HTTP, or a local store.

Both built-in sinks share :class:`BackgroundSink`: ``submit`` only puts the record on a bounded queue (it never blocks
and never raises), and one daemon thread sends batches. A full queue drops the record and counts it; a failed
delivery is logged and counted, never raised. Buffered records are sent on :meth:`BackgroundSink.flush`, on
:meth:`BackgroundSink.close` and when the interpreter exits.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import orjson

logger = logging.getLogger("flywheel.sdk")

#: A logged record in the blueprint schema (JSON-ready).
Record = dict[str, Any]


@runtime_checkable
class LogSink(Protocol):
    """Receives records from instrumented clients. ``submit`` must return quickly (it runs in the caller's call)."""

    def submit(self, record: Record) -> None:
        """Accept one record for delivery."""
        ...

    def flush(self, timeout: float | None = None) -> bool:
        """Deliver everything submitted so far; False if that did not finish within ``timeout`` seconds."""
        ...

    def close(self) -> None:
        """Flush and release resources; later submissions are dropped."""
        ...


@dataclass(frozen=True)
class Delivery:
    """What the destination made of one batch."""

    stored: int  # new records plus records already stored (a duplicate is not a loss)
    quarantined: int = 0
    reasons: dict[str, int] | None = None


@dataclass(frozen=True)
class SinkStats:
    """Counters of a background sink since it was created (a snapshot)."""

    submitted: int = 0  #: records handed to the sink
    stored: int = 0  #: records the destination stored (new or already there)
    quarantined: int = 0  #: records the destination rejected as invalid (kept in its quarantine table)
    dropped: int = 0  #: records dropped because the queue was full or the sink was closed
    failed: int = 0  #: records lost because delivery failed (destination down, store error, …)
    pending: int = 0  #: records waiting in the queue


class DeliveryError(Exception):
    """A batch could not be delivered; the message says why (and never contains a secret)."""


class _Flush:
    """Queue marker: the worker sets ``done`` once everything queued before it has been delivered."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class _Many:
    """Queue item: several records submitted at once (one wake-up of the worker for all of them)."""

    __slots__ = ("records",)

    def __init__(self, records: list[Record]) -> None:
        self.records = records


_STOP = object()


class BackgroundSink:
    """Batches records on a bounded queue and delivers them from one daemon thread.

    ``deliver(batch)`` runs in that thread only, so it may hold thread-bound resources (an HTTP client, a database
    connection). It returns a :class:`Delivery` or raises; either way the sink keeps going.
    """

    def __init__(
        self,
        deliver: Callable[[list[Record]], Delivery],
        *,
        destination: str,
        batch_size: int = 100,
        max_queue: int = 10_000,
        flush_interval: float = 1.0,
        exit_timeout: float = 10.0,
        on_close: Callable[[], None] | None = None,
        on_fork: Callable[[], None] | None = None,
    ) -> None:
        if batch_size < 1 or max_queue < 1:
            raise ValueError("batch_size and max_queue must be at least 1")
        self.destination = destination
        self._deliver = deliver
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._exit_timeout = exit_timeout
        self._on_close = on_close
        self._on_fork = on_fork
        self._pid = os.getpid()
        # One extra slot so that a flush or stop marker fits even when records fill the queue. The bound that
        # matters is in records (``queued`` ≤ ``max_queue``), since an item may hold several.
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue + 1)
        self._max_queue = max_queue
        self._lock = threading.Lock()
        self._counts = {"submitted": 0, "stored": 0, "quarantined": 0, "dropped": 0, "failed": 0, "queued": 0}
        self._thread: threading.Thread | None = None
        self._closed = False
        self._failing = False

    # -- caller side ----------------------------------------------------------------------------------------

    def submit(self, record: Record) -> None:
        """Queue ``record``; drop it (counted, logged) when the queue is full. Never blocks, never raises."""
        self._put(record, 1)

    def submit_many(self, records: list[Record]) -> None:
        """Queue ``records`` as one item: one wake-up of the worker instead of one per record (a caller that
        produces many records a second, such as the gateway, gathers them first). All are dropped (counted,
        logged) when they do not fit in the queue. Never blocks, never raises."""
        if records:
            self._put(_Many(records), len(records))

    def _put(self, item: Any, n: int) -> None:
        self._check_fork()
        with self._lock:
            self._counts["submitted"] += n
            why = (
                "the sink is closed"
                if self._closed
                else "the queue is full"
                if self._counts["queued"] + n > self._max_queue
                else None
            )
            if why is None:
                self._counts["queued"] += n
        if why is not None:
            self._drop(why, n)
            return
        self._ensure_worker()
        try:
            self._queue.put_nowait(item)
        except queue.Full:  # only markers share the spare slot; counted as full all the same
            self._count(queued=-n)
            self._drop("the queue is full", n)

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every record submitted before this call was delivered (or failed); False on timeout."""
        self._check_fork()
        if self._thread is None or not self._thread.is_alive():
            return self._queue.empty()
        marker = _Flush()
        try:
            self._queue.put(marker, timeout=timeout)
        except queue.Full:
            return False
        return marker.done.wait(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Flush, stop the worker and release the destination. Idempotent."""
        self._check_fork()
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._close_at_exit)
        thread = self._thread
        if thread is not None and thread.is_alive():
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                logger.warning("flywheel: could not stop the log sink for %s in time", self.destination)
            thread.join(timeout)
        if self._on_close is not None:
            try:
                self._on_close()
            except Exception as exc:
                logger.warning("flywheel: closing the log sink for %s failed: %s", self.destination, exc)

    @property
    def stats(self) -> SinkStats:
        """A snapshot of this sink's counters."""
        with self._lock:
            counts = dict(self._counts)
            return SinkStats(**{k: v for k, v in counts.items() if k != "queued"}, pending=counts["queued"])

    # -- worker side ----------------------------------------------------------------------------------------

    def _check_fork(self) -> None:
        """In a forked child (gunicorn, multiprocessing) start afresh: no worker thread exists there, the parent's
        queued records are the parent's to send, and its connections must not be shared."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._lock = threading.Lock()  # another parent thread may have held it at the fork
        self._queue = queue.Queue(maxsize=self._max_queue + 1)
        self._counts["queued"] = 0
        self._thread = None
        if self._on_fork is not None:
            self._on_fork()

    def _ensure_worker(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            thread = threading.Thread(target=self._run, name="flywheel-log-sink", daemon=True)
            thread.start()
            self._thread = thread
        # Daemon threads die abruptly at exit; atexit runs first, so buffered records still go out.
        atexit.register(self._close_at_exit)

    def _close_at_exit(self) -> None:
        self.close(timeout=self._exit_timeout)

    def _run(self) -> None:
        batch: list[Record] = []
        deadline = 0.0
        while True:
            try:
                # Idle: sleep until something arrives. Partial batch: wait at most until it is due.
                item = (
                    self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                    if batch
                    else self._queue.get()
                )
            except queue.Empty:
                self._send(batch)
                batch = []
                continue
            if item is _STOP:
                self._send(batch)
                return
            if isinstance(item, _Flush):
                self._send(batch)
                batch = []
                item.done.set()
                continue
            if not batch:
                deadline = time.monotonic() + self._flush_interval
            records = item.records if isinstance(item, _Many) else [item]
            self._count(queued=-len(records))
            batch.extend(records)
            while len(batch) >= self._batch_size:
                self._send(batch[: self._batch_size])
                batch = batch[self._batch_size :]

    def _send(self, batch: list[Record]) -> None:
        if not batch:
            return
        try:
            result = self._deliver(batch)
        except Exception as exc:  # the worker must survive anything a destination does
            self._count(failed=len(batch))
            log = logger.debug if self._failing else logger.warning
            log(
                "flywheel: %d logged records could not be delivered to %s: %s",
                len(batch),
                self.destination,
                exc,
            )
            self._failing = True
            return
        if self._failing:
            logger.info("flywheel: delivering logged records to %s again", self.destination)
            self._failing = False
        self._count(stored=result.stored, quarantined=result.quarantined)
        if result.quarantined:
            logger.warning(
                "flywheel: %s quarantined %d logged records: %s",
                self.destination,
                result.quarantined,
                result.reasons or {},
            )

    def _drop(self, why: str, n: int = 1) -> None:
        dropped = self._count(dropped=n)["dropped"]
        if dropped == n or dropped // 1000 != (dropped - n) // 1000:  # one warning per thousand is enough
            logger.warning(
                "flywheel: dropped %d logged records because %s (%d dropped so far)", n, why, dropped
            )

    def _count(self, **deltas: int) -> dict[str, int]:
        with self._lock:
            for key, value in deltas.items():
                self._counts[key] += value
            return dict(self._counts)


def _redact_url(url: str) -> str:
    from flywheel.config import redact_url  # pydantic and yaml: only when a built-in sink is created

    return redact_url(url)


class HttpSink(BackgroundSink):
    """Sends batches to a flywheel server's ``POST /api/logs`` (optionally with ``Authorization: Bearer KEY``).

    Connection errors and 5xx responses are retried ``retries`` times with a short back-off; then the batch is
    counted as failed. 401/403 are not retried (the key is wrong).
    """

    def __init__(
        self,
        server_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        batch_size: int = 100,
        max_queue: int = 10_000,
        flush_interval: float = 1.0,
        exit_timeout: float = 10.0,
    ) -> None:
        self._url = server_url.rstrip("/") + "/api/logs"
        self._headers = {"content-type": "application/json"}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        self._timeout = timeout
        self._retries = retries
        self._http: Any = None
        super().__init__(
            self._post,
            destination=_redact_url(self._url),
            batch_size=batch_size,
            max_queue=max_queue,
            flush_interval=flush_interval,
            exit_timeout=exit_timeout,
            on_close=self._close_http,
            on_fork=self._forget_http,
        )

    def __repr__(self) -> str:  # never show the key
        return f"HttpSink({self.destination!r})"

    def _post(self, batch: list[Record]) -> Delivery:
        import httpx

        if self._http is None:
            self._http = httpx.Client(timeout=self._timeout)
        body = orjson.dumps(batch, default=str)
        attempt = 0
        while True:
            try:
                response = self._http.post(self._url, content=body, headers=self._headers)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    counts = response.json()
                    return Delivery(
                        stored=int(counts.get("accepted", 0)) + int(counts.get("duplicates", 0)),
                        quarantined=int(counts.get("quarantined", 0)),
                        reasons=counts.get("quarantine_reasons"),
                    )
                problem = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code < 500:
                    hint = " (check the API key)" if response.status_code in (401, 403) else ""
                    raise DeliveryError(problem + hint)
            if attempt >= self._retries:
                raise DeliveryError(problem)
            time.sleep(0.2 * 2**attempt)
            attempt += 1

    def _forget_http(self) -> None:
        self._http = None  # its pooled sockets belong to the parent process; never close them from here

    def _close_http(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None


class StoreSink(BackgroundSink):
    """Writes batches straight into a flywheel store (``database_url``), with the same validation as ingestion.

    The store is opened (and migrated) in the worker thread on the first batch, so a slow or unreachable database
    never delays the caller; if opening fails, the batch is counted as failed and the next batch tries again.
    """

    def __init__(
        self,
        database_url: str,
        *,
        batch_size: int = 100,
        max_queue: int = 10_000,
        flush_interval: float = 1.0,
        exit_timeout: float = 10.0,
    ) -> None:
        self._database_url = database_url
        self._engine: Any = None
        super().__init__(
            self._write,
            destination=_redact_url(database_url),
            batch_size=batch_size,
            max_queue=max_queue,
            flush_interval=flush_interval,
            exit_timeout=exit_timeout,
            on_close=self._dispose,
            on_fork=self._forget_connections,
        )

    def __repr__(self) -> str:
        return f"StoreSink({self.destination!r})"

    def _write(self, batch: list[Record]) -> Delivery:
        from flywheel.pipeline.ingest import ingest_objects
        from flywheel.store import open_store

        if self._engine is None:
            self._engine = open_store(self._database_url)
        report = ingest_objects(self._engine, batch, source="sdk")
        return Delivery(
            stored=report.accepted + report.duplicates,
            quarantined=report.quarantined,
            reasons=dict(report.quarantine_reasons),
        )

    def _forget_connections(self) -> None:
        if self._engine is not None:
            self._engine.dispose(close=False)  # SQLAlchemy's recipe for a forked child: drop, don't close

    def _dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
