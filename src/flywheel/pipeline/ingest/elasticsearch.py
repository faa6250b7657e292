"""Importing log records from an Elasticsearch index, for users of the reference blueprint.

The reference writes one document per call in the blueprint schema (``timestamp``, ``workload_id``, ``client_id``,
``request``, ``response``). This module reads them with the official client's scroll helper, one page at a time, and
feeds each ``_source`` through the same validation and batched, idempotent writer as file ingestion — so memory stays
constant whatever the index size, re-importing is a no-op and broken documents are quarantined with a reason.

It has not been run against a live cluster here; the tests use a loopback fake of the search/scroll protocol.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Engine

from flywheel.config import redact_url
from flywheel.errors import BackendError, DataError, MissingDependencyError
from flywheel.pipeline.ingest._ingest import item_text
from flywheel.pipeline.ingest._records import Rejection, prepare_record
from flywheel.pipeline.ingest._sink import IngestReport, RecordSink


def build_query(workload_id: str | None, client_id: str | None) -> dict[str, Any]:
    """The search body: every document, or those of one workload and/or client.

    Like the reference's export this matches ``workload_id``/``client_id``, but in filter context (no scoring) and with
    ``operator: and``, so that on an index with dynamic text mappings "a-b" does not also match "a" or "b".
    """
    clauses = [
        {"match": {field: {"query": value, "operator": "and"}}}
        for field, value in (("workload_id", workload_id), ("client_id", client_id))
        if value is not None
    ]
    return {"query": {"bool": {"filter": clauses}}} if clauses else {"query": {"match_all": {}}}


def _hits(
    client: Any, index: str, query: dict[str, Any], page_size: int, scroll: str
) -> Iterator[dict[str, Any]]:
    from elasticsearch import helpers

    # scan() sorts by _doc (the cheapest order; ingestion does not depend on order) and clears the scroll when done,
    # also when we stop early because of an error.
    yield from helpers.scan(
        client, query=query, index=index, size=page_size, scroll=scroll, clear_scroll=True
    )


def _translate(exc: Exception, url: str, index: str, password: str | None) -> Exception:
    """Our error for a client exception: what happened and how to fix it, with no password in it."""
    from elasticsearch import (
        ApiError,
        AuthenticationException,
        AuthorizationException,
        NotFoundError,
        UnsupportedProductError,
    )
    from elasticsearch import ConnectionError as ESConnectionError
    from elasticsearch.helpers import ScanError

    detail = str(exc)
    if password:
        detail = detail.replace(password, "***")
    where = redact_url(url)
    if isinstance(exc, NotFoundError):
        return DataError(
            f"Elasticsearch index {index!r} does not exist at {where} ({detail}). "
            "Check --index (default: $ES_COLLECTION_NAME)."
        )
    if isinstance(exc, AuthenticationException | AuthorizationException):
        return BackendError(
            f"Elasticsearch at {where} refused the credentials for index {index!r} ({detail}). "
            "Give an API key or user:password in the URL with read access to the index."
        )
    if isinstance(exc, ESConnectionError):
        return BackendError(
            f"Cannot reach Elasticsearch at {where}: {detail}. Check the URL and that the cluster is running."
        )
    if isinstance(exc, UnsupportedProductError):
        return BackendError(f"The server at {where} is not Elasticsearch ({detail}).")
    if isinstance(exc, ScanError):
        return BackendError(f"Reading index {index!r} at {where} stopped part-way: {detail}. Try again.")
    if isinstance(exc, ApiError):
        return BackendError(f"Elasticsearch at {where} answered an error for index {index!r}: {detail}")
    return BackendError(f"Reading index {index!r} from Elasticsearch at {where} failed: {detail}")


def ingest_elasticsearch(
    engine: Engine,
    url: str,
    index: str,
    *,
    workload_id: str | None = None,
    client_id: str | None = None,
    page_size: int = 1000,
    scroll: str = "2m",
    api_key: str | None = None,
    request_timeout: float = 30.0,
    max_retries: int = 3,
    ca_certs: str | None = None,
    verify_certs: bool = True,
    batch_size: int = 5000,
    on_progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Store the records of Elasticsearch ``index`` at ``url`` (optionally one workload and/or client).

    Documents are read page by page (``page_size`` hits per scroll request) and written in batches of ``batch_size``,
    so memory does not grow with the index. Credentials: ``api_key`` (sent as ``ApiKey``) or ``user:password`` in
    ``url``. ``on_progress(n)`` is called with the number of documents read so far, once per page.

    Raises :class:`~flywheel.errors.DataError` when the index does not exist and
    :class:`~flywheel.errors.BackendError` when the cluster cannot be reached, refuses the credentials or fails
    part-way (records read until then are kept; the ingestion is marked failed).
    :class:`~flywheel.errors.MissingDependencyError` when the ``elasticsearch`` package is not installed.
    """
    try:
        from elasticsearch import ApiError, Elasticsearch, TransportError, UnsupportedProductError
        from elasticsearch.helpers import ScanError
    except ImportError:
        raise MissingDependencyError("elasticsearch", "service") from None
    if not index:
        raise DataError("No Elasticsearch index given: pass --index NAME or set ES_COLLECTION_NAME.")
    password = urllib.parse.urlsplit(url).password
    client_options: dict[str, Any] = {
        "request_timeout": request_timeout,
        "max_retries": max_retries,
        "retry_on_timeout": True,
        "verify_certs": verify_certs,
    }
    if api_key:
        client_options["api_key"] = api_key
    if ca_certs:
        client_options["ca_certs"] = ca_certs
    try:
        client = Elasticsearch(url, **client_options)
    except ValueError as exc:  # the client validates the URL when it is built
        detail = str(exc).replace(password, "***") if password else str(exc)
        raise DataError(f"Invalid Elasticsearch URL {redact_url(url)!r}: {detail}") from None

    query = build_query(workload_id, client_id)
    source = f"elasticsearch:{redact_url(url).rstrip('/')}/{index}"
    translatable = (ApiError, TransportError, UnsupportedProductError, ScanError)
    try:
        with RecordSink(engine, source, batch_size=batch_size) as sink:
            try:
                _ingest_hits(
                    sink,
                    _hits(client, index, query, page_size, scroll),
                    workload_id=workload_id,
                    client_id=client_id,
                    page_size=page_size,
                    on_progress=on_progress,
                )
            except translatable as exc:
                # Raised inside the sink so the ingestion row is finalised as failed with our message.
                raise _translate(exc, url, index, password) from exc
    finally:
        client.close()
    return sink.report


def _ingest_hits(
    sink: RecordSink,
    hits: Iterator[dict[str, Any]],
    *,
    workload_id: str | None,
    client_id: str | None,
    page_size: int,
    on_progress: Callable[[int], None] | None,
) -> None:
    index = 0
    now = time.time()
    for hit in hits:
        doc = hit.get("_source")
        if isinstance(doc, dict) and not _matches(doc, workload_id, client_id):
            continue  # the server's match was looser than an exact id (text-mapped field): not part of this import
        result = prepare_record(doc, now=now) if doc is not None else Rejection("document has no _source")
        if isinstance(result, Rejection):
            sink.reject(index, result, item_text(doc if doc is not None else hit), None, now)
        else:
            sink.add(result, now, index)
        index += 1
        if index % page_size == 0:
            now = time.time()
            if on_progress is not None:
                on_progress(index)
    if on_progress is not None:
        on_progress(index)


def _matches(doc: dict[str, Any], workload_id: str | None, client_id: str | None) -> bool:
    return (workload_id is None or doc.get("workload_id") == workload_id) and (
        client_id is None or doc.get("client_id") == client_id
    )
