"""Ingestion: logged request/response records into the store, idempotently, quarantining what is broken.

Paths in: JSONL files (:func:`ingest_file`), parsed objects from the API or the SDK (:func:`ingest_objects`),
and an Elasticsearch index (:mod:`flywheel.pipeline.ingest.elasticsearch`).
"""

from flywheel.pipeline.ingest._ingest import ingest_file, ingest_lines, ingest_objects, open_jsonl
from flywheel.pipeline.ingest._records import (
    HASH_VERSION,
    PreparedRecord,
    Rejection,
    loader_line_to_record,
    parse_timestamp,
    prepare_record,
    record_hash,
)
from flywheel.pipeline.ingest._sink import IngestReport, ItemError, RecordSink

__all__ = [
    "HASH_VERSION",
    "IngestReport",
    "ItemError",
    "PreparedRecord",
    "RecordSink",
    "Rejection",
    "ingest_file",
    "ingest_lines",
    "ingest_objects",
    "loader_line_to_record",
    "open_jsonl",
    "parse_timestamp",
    "prepare_record",
    "record_hash",
]
