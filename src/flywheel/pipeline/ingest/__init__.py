"""Ingestion: logged request/response records into the store, idempotently, quarantining what is broken.

Paths in: JSONL files (:func:`ingest_file`), parsed objects from the API or the SDK (:func:`ingest_objects`),
and an Elasticsearch index (:mod:`flywheel.pipeline.ingest.elasticsearch`). Every record is checked against every
store's limits before it is written (``_limits``), so a bad record is quarantined, never a batch of good ones lost.
"""

from flywheel.pipeline.ingest._ingest import (
    NOT_UTF8_REASON,
    ingest_file,
    ingest_lines,
    ingest_objects,
    item_text,
    open_jsonl,
)
from flywheel.pipeline.ingest._limits import MAX_DEPTH, MAX_ID_CHARS, MAX_RECORD_BYTES
from flywheel.pipeline.ingest._records import (
    HASH_VERSION,
    PreparedRecord,
    Rejection,
    loader_line_to_record,
    parse_timestamp,
    prepare_record,
    record_hash,
)
from flywheel.pipeline.ingest._sink import (
    NOT_KEPT_REASON,
    QUARANTINE_ROWS_LIMIT,
    STORE_REFUSED_REASON,
    IngestReport,
    ItemError,
    RecordSink,
    quarantine_key,
)

__all__ = [
    "HASH_VERSION",
    "MAX_DEPTH",
    "MAX_ID_CHARS",
    "MAX_RECORD_BYTES",
    "NOT_KEPT_REASON",
    "NOT_UTF8_REASON",
    "QUARANTINE_ROWS_LIMIT",
    "STORE_REFUSED_REASON",
    "IngestReport",
    "ItemError",
    "PreparedRecord",
    "RecordSink",
    "Rejection",
    "ingest_file",
    "ingest_lines",
    "ingest_objects",
    "item_text",
    "loader_line_to_record",
    "open_jsonl",
    "parse_timestamp",
    "prepare_record",
    "quarantine_key",
    "record_hash",
]
