"""``flywheel.Client`` and ``flywheel.AsyncClient``: every ``/api`` route of a flywheel server, with typed answers.

Both run the same operations (:mod:`flywheel.client._core`); each method here only names the operation and its
arguments. The methods of the two classes correspond one to one (a test checks it).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from flywheel.client import _core
from flywheel.client._core import (
    DEFAULT_TIMEOUT_S,
    LOG_BATCH,
    LOG_BATCH_BYTES,
    Call,
    Connection,
    Emit,
    EvalType,
    JobStatus,
    Notify,
    Op,
    Order,
    Sleep,
    Step,
)
from flywheel.client._types import (
    Health,
    IngestSummary,
    JobAction,
    JobCreated,
    JobDetail,
    JobPage,
    JobSummary,
    QuarantinedRecord,
    QuarantinePage,
    Report,
    Sample,
    SamplePage,
)

T = TypeVar("T")

#: Items per request when iterating (``iter_jobs``, ``iter_samples``).
PAGE_SIZE = 100


class Client:
    """A flywheel server's HTTP API, synchronously::

        with flywheel.Client("http://flywheel:8000", api_key="…") as fw:
            job = fw.create_job("support-agent", "web")
            detail = fw.wait(job["id"], on_progress=lambda d: print(d["status"]))
            print(fw.report(job["id"])["recommendation"]["message"])

    ``base_url`` defaults to ``$FLYWHEEL_SERVER``, ``api_key`` to ``$FLYWHEEL_API_KEY``. An error answer raises
    :class:`~flywheel.errors.NotFoundError` (404), :class:`~flywheel.errors.ConflictError` (409),
    :class:`~flywheel.errors.ConfigError` (401, 422: the server's message; ``problems`` holds each field's), or
    :class:`~flywheel.errors.FlywheelError` (anything else, or no answer); messages never show the key or a password.
    """

    def __init__(
        self, base_url: str | None = None, *, api_key: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self._conn = Connection(base_url, api_key, timeout_s)
        self._http = httpx.Client(base_url=self._conn.url, headers=self._conn.headers, timeout=timeout_s)

    def __repr__(self) -> str:
        return f"Client({self._conn!r})"

    @property
    def base_url(self) -> str:
        """The server's URL, with any password or token in it shown as ``***``."""
        return self._conn.shown_url

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -------------------------------------------------------------------------------------------- driver

    def _step(self, step: Step) -> Any:
        if isinstance(step, Call):
            try:
                response = self._http.request(
                    step.method,
                    step.path,
                    params=step.params,
                    json=step.json,
                    content=step.content,
                    headers={"Content-Type": "application/json"} if step.content is not None else None,
                )
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                # not chained: the HTTP library's error names the URL as given, password included
                raise self._conn.unreachable(step, exc) from None
            return self._conn.answer(step, response)
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
        elif isinstance(step, Notify):
            step.callback(step.value)
        return None

    def _run(self, op: Op[T]) -> T:
        reply: Any = None
        while True:
            try:
                step = op.send(reply)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            reply = self._step(step)

    def _iterate(self, op: Op[None]) -> Iterator[Any]:
        reply: Any = None
        while True:
            try:
                step = op.send(reply)
            except StopIteration:
                return
            if isinstance(step, Emit):
                reply = None
                yield step.item
            else:
                reply = self._step(step)

    # -------------------------------------------------------------------------------------------- routes

    def health(self) -> Health:
        """``GET /health``: the server's status and version."""
        return self._run(_core.health())

    def logs(
        self,
        records: Mapping[str, Any] | Iterable[Mapping[str, Any]],
        *,
        batch_size: int = LOG_BATCH,
        max_batch_bytes: int = LOG_BATCH_BYTES,
    ) -> IngestSummary:
        """Store log records (one dict, or any iterable of them, read lazily) with ``POST /api/logs``, in batches.

        Invalid records are quarantined with a reason, not raised: see ``errors`` (indexed in ``records``)."""
        return self._run(_core.logs(records, batch_size=batch_size, max_batch_bytes=max_batch_bytes))

    def create_job(
        self,
        workload_id: str,
        client_id: str,
        *,
        data_split_config: Mapping[str, Any] | None = None,
        icl_config: Mapping[str, Any] | None = None,
        evaluation_config: Mapping[str, Any] | None = None,
        candidates: Iterable[str] | None = None,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
    ) -> JobCreated:
        """Start a run (``POST /api/jobs``); overrides the server's configuration rejects raise ConfigError naming
        the field. ``since`` / ``until``: epoch seconds or a datetime (naive = UTC)."""
        return self._run(
            _core.create_job(
                workload_id,
                client_id,
                data_split_config=data_split_config,
                icl_config=icl_config,
                evaluation_config=evaluation_config,
                candidates=candidates,
                since=since,
                until=until,
            )
        )

    def list_jobs(
        self,
        *,
        workload_id: str | None = None,
        client_id: str | None = None,
        status: JobStatus | None = None,
        order: Order | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> JobPage:
        """One page of jobs (``GET /api/jobs``): oldest first unless ``order='desc'``; the server's defaults
        (50 a page) for what is not given."""
        return self._run(
            _core.list_jobs(
                workload_id=workload_id,
                client_id=client_id,
                status=status,
                order=order,
                limit=limit,
                offset=offset,
            )
        )

    def iter_jobs(
        self,
        *,
        workload_id: str | None = None,
        client_id: str | None = None,
        status: JobStatus | None = None,
        order: Order | None = None,
        page_size: int = PAGE_SIZE,
    ) -> Iterator[JobSummary]:
        """Every matching job, page after page."""
        return self._iterate(
            _core.iter_jobs(
                workload_id=workload_id, client_id=client_id, status=status, order=order, page_size=page_size
            )
        )

    def get_job(self, job_id: str) -> JobDetail:
        """The job in detail (``GET /api/jobs/{id}``)."""
        return self._run(_core.get_job(job_id))

    def wait(
        self,
        job_id: str,
        *,
        on_progress: Callable[[JobDetail], object] | None = None,
        poll_s: float = 1.0,
        timeout_s: float | None = None,
    ) -> JobDetail:
        """Poll until the job is completed, failed or cancelled and return its final detail. ``on_progress(detail)``
        is called with the first detail and with every one that changed. Past ``timeout_s`` raises
        :class:`WaitTimeout` (the job goes on)."""
        return self._run(_core.wait(job_id, on_progress=on_progress, poll_s=poll_s, timeout_s=timeout_s))

    def cancel_job(self, job_id: str) -> JobAction:
        """Ask the job to stop (``POST /api/jobs/{id}/cancel``); ConflictError if it already finished."""
        return self._run(_core.cancel_job(job_id))

    def delete_job(self, job_id: str) -> JobAction:
        """Remove a finished job with its datasets and adapters; ConflictError while it is active."""
        return self._run(_core.delete_job(job_id))

    def report(self, job_id: str) -> Report:
        """The job's report (``GET /api/jobs/{id}/report``), also while it runs."""
        return self._run(_core.report(job_id))

    def samples(
        self,
        job_id: str,
        *,
        candidate: str | None = None,
        eval_type: EvalType | None = None,
        max_score: float | None = None,
        search: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> SamplePage:
        """One page of per-sample evidence, lowest score first (``GET /api/jobs/{id}/samples``)."""
        return self._run(
            _core.samples(
                job_id,
                candidate=candidate,
                eval_type=eval_type,
                max_score=max_score,
                search=search,
                limit=limit,
                offset=offset,
            )
        )

    def iter_samples(
        self,
        job_id: str,
        *,
        candidate: str | None = None,
        eval_type: EvalType | None = None,
        max_score: float | None = None,
        search: str | None = None,
        page_size: int = PAGE_SIZE,
    ) -> Iterator[Sample]:
        """Every matching sample, page after page."""
        return self._iterate(
            _core.iter_samples(
                job_id,
                candidate=candidate,
                eval_type=eval_type,
                max_score=max_score,
                search=search,
                page_size=page_size,
            )
        )

    def list_quarantine(
        self,
        *,
        source: str | None = None,
        ingestion_id: str | None = None,
        reason: str | None = None,
        order: Order | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> QuarantinePage:
        """One page of rejected lines and items with their reasons, newest first (``GET /api/quarantine``)."""
        return self._run(
            _core.list_quarantine(
                source=source,
                ingestion_id=ingestion_id,
                reason=reason,
                order=order,
                limit=limit,
                offset=offset,
            )
        )

    def get_quarantined(self, record_id: int) -> QuarantinedRecord:
        """One rejected line or item (``GET /api/quarantine/{id}``)."""
        return self._run(_core.get_quarantined(record_id))


class AsyncClient:
    """:class:`Client` for asyncio: the same methods and answers, awaited (``iter_*`` are async iterators).
    ``wait``'s ``on_progress`` may be a coroutine function::

        async with flywheel.AsyncClient("http://flywheel:8000", api_key="…") as fw:
            detail = await fw.wait(job_id)
    """

    def __init__(
        self, base_url: str | None = None, *, api_key: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self._conn = Connection(base_url, api_key, timeout_s)
        self._http = httpx.AsyncClient(base_url=self._conn.url, headers=self._conn.headers, timeout=timeout_s)

    def __repr__(self) -> str:
        return f"AsyncClient({self._conn!r})"

    @property
    def base_url(self) -> str:
        """The server's URL, with any password or token in it shown as ``***``."""
        return self._conn.shown_url

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -------------------------------------------------------------------------------------------- driver

    async def _step(self, step: Step) -> Any:
        if isinstance(step, Call):
            try:
                response = await self._http.request(
                    step.method,
                    step.path,
                    params=step.params,
                    json=step.json,
                    content=step.content,
                    headers={"Content-Type": "application/json"} if step.content is not None else None,
                )
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                # not chained: the HTTP library's error names the URL as given, password included
                raise self._conn.unreachable(step, exc) from None
            return self._conn.answer(step, response)
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
        elif isinstance(step, Notify):
            result = step.callback(step.value)
            if inspect.isawaitable(result):
                await result
        return None

    async def _run(self, op: Op[T]) -> T:
        reply: Any = None
        while True:
            try:
                step = op.send(reply)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            reply = await self._step(step)

    async def _iterate(self, op: Op[None]) -> AsyncIterator[Any]:
        reply: Any = None
        while True:
            try:
                step = op.send(reply)
            except StopIteration:
                return
            if isinstance(step, Emit):
                reply = None
                yield step.item
            else:
                reply = await self._step(step)

    # -------------------------------------------------------------------------------------------- routes

    async def health(self) -> Health:
        """See :meth:`Client.health`."""
        return await self._run(_core.health())

    async def logs(
        self,
        records: Mapping[str, Any] | Iterable[Mapping[str, Any]],
        *,
        batch_size: int = LOG_BATCH,
        max_batch_bytes: int = LOG_BATCH_BYTES,
    ) -> IngestSummary:
        """See :meth:`Client.logs`."""
        return await self._run(_core.logs(records, batch_size=batch_size, max_batch_bytes=max_batch_bytes))

    async def create_job(
        self,
        workload_id: str,
        client_id: str,
        *,
        data_split_config: Mapping[str, Any] | None = None,
        icl_config: Mapping[str, Any] | None = None,
        evaluation_config: Mapping[str, Any] | None = None,
        candidates: Iterable[str] | None = None,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
    ) -> JobCreated:
        """See :meth:`Client.create_job`."""
        return await self._run(
            _core.create_job(
                workload_id,
                client_id,
                data_split_config=data_split_config,
                icl_config=icl_config,
                evaluation_config=evaluation_config,
                candidates=candidates,
                since=since,
                until=until,
            )
        )

    async def list_jobs(
        self,
        *,
        workload_id: str | None = None,
        client_id: str | None = None,
        status: JobStatus | None = None,
        order: Order | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> JobPage:
        """See :meth:`Client.list_jobs`."""
        return await self._run(
            _core.list_jobs(
                workload_id=workload_id,
                client_id=client_id,
                status=status,
                order=order,
                limit=limit,
                offset=offset,
            )
        )

    def iter_jobs(
        self,
        *,
        workload_id: str | None = None,
        client_id: str | None = None,
        status: JobStatus | None = None,
        order: Order | None = None,
        page_size: int = PAGE_SIZE,
    ) -> AsyncIterator[JobSummary]:
        """See :meth:`Client.iter_jobs` (``async for``)."""
        return self._iterate(
            _core.iter_jobs(
                workload_id=workload_id, client_id=client_id, status=status, order=order, page_size=page_size
            )
        )

    async def get_job(self, job_id: str) -> JobDetail:
        """See :meth:`Client.get_job`."""
        return await self._run(_core.get_job(job_id))

    async def wait(
        self,
        job_id: str,
        *,
        on_progress: Callable[[JobDetail], object | Awaitable[object]] | None = None,
        poll_s: float = 1.0,
        timeout_s: float | None = None,
    ) -> JobDetail:
        """See :meth:`Client.wait`; ``on_progress`` may also be a coroutine function."""
        return await self._run(
            _core.wait(job_id, on_progress=on_progress, poll_s=poll_s, timeout_s=timeout_s)
        )

    async def cancel_job(self, job_id: str) -> JobAction:
        """See :meth:`Client.cancel_job`."""
        return await self._run(_core.cancel_job(job_id))

    async def delete_job(self, job_id: str) -> JobAction:
        """See :meth:`Client.delete_job`."""
        return await self._run(_core.delete_job(job_id))

    async def report(self, job_id: str) -> Report:
        """See :meth:`Client.report`."""
        return await self._run(_core.report(job_id))

    async def samples(
        self,
        job_id: str,
        *,
        candidate: str | None = None,
        eval_type: EvalType | None = None,
        max_score: float | None = None,
        search: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> SamplePage:
        """See :meth:`Client.samples`."""
        return await self._run(
            _core.samples(
                job_id,
                candidate=candidate,
                eval_type=eval_type,
                max_score=max_score,
                search=search,
                limit=limit,
                offset=offset,
            )
        )

    def iter_samples(
        self,
        job_id: str,
        *,
        candidate: str | None = None,
        eval_type: EvalType | None = None,
        max_score: float | None = None,
        search: str | None = None,
        page_size: int = PAGE_SIZE,
    ) -> AsyncIterator[Sample]:
        """See :meth:`Client.iter_samples` (``async for``)."""
        return self._iterate(
            _core.iter_samples(
                job_id,
                candidate=candidate,
                eval_type=eval_type,
                max_score=max_score,
                search=search,
                page_size=page_size,
            )
        )

    async def list_quarantine(
        self,
        *,
        source: str | None = None,
        ingestion_id: str | None = None,
        reason: str | None = None,
        order: Order | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> QuarantinePage:
        """See :meth:`Client.list_quarantine`."""
        return await self._run(
            _core.list_quarantine(
                source=source,
                ingestion_id=ingestion_id,
                reason=reason,
                order=order,
                limit=limit,
                offset=offset,
            )
        )

    async def get_quarantined(self, record_id: int) -> QuarantinedRecord:
        """See :meth:`Client.get_quarantined`."""
        return await self._run(_core.get_quarantined(record_id))
