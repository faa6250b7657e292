"""Property tests: whatever lines or JSON values come in, on either store, ingestion accounts for every one of them,
stores every valid record exactly once and never raises.

Lines mix records that are valid by construction (any text, ids up to the column width), records no store can hold
(ids too wide or with NUL, nesting too deep), arbitrary JSON values and arbitrary bytes. Examples share one store
per test, so the checks compare counts before and after each ingestion.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from flywheel.pipeline.ingest import ingest_lines, ingest_objects, record_hash
from flywheel.store import log_records, open_store, quarantined_records

#: The width of the id columns, the most characters an id can have.
MAX_ID_CHARS: int = log_records.c.workload_id.type.length  # type: ignore[attr-defined]
#: Few examples, each of a dozen lines and two ingestions: a few seconds per store.
PROPERTY_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
storable_ids = st.text(min_size=1, max_size=MAX_ID_CHARS).filter(
    lambda s: s.strip() != "" and "\x00" not in s
)


@st.composite
def valid_records(draw: st.DrawFn) -> dict[str, Any]:
    """A record every store holds: any message text (NUL included), ids up to the column width, extra fields."""
    record: dict[str, Any] = {
        "timestamp": draw(st.integers(min_value=0, max_value=2**40)),
        "workload_id": draw(storable_ids),
        "client_id": draw(storable_ids),
        "request": {"messages": [{"role": "user", "content": draw(st.text(max_size=50))}]},
        "response": {"choices": [{"message": {"role": "assistant", "content": draw(st.text(max_size=50))}}]},
    }
    record.update(
        draw(st.dictionaries(st.sampled_from(["tags", "session", "meta"]), json_values, max_size=2))
    )
    return record


@st.composite
def unstorable_lines(draw: st.DrawFn) -> bytes:
    """A record that is valid JSON but that no store can hold: an id too wide or with NUL, or nested too deep."""
    record = draw(valid_records())
    kind = draw(st.sampled_from(["wide id", "nul id", "deep"]))
    if kind == "wide id":
        record["workload_id"] = "w" * draw(st.integers(MAX_ID_CHARS + 1, 4 * MAX_ID_CHARS))
    elif kind == "nul id":
        record["client_id"] = draw(st.text(max_size=5)) + "\x00"
    else:
        levels = draw(st.integers(254, 1022))
        return orjson.dumps(record)[:-1] + b',"deep":' + b"[" * levels + b"]" * levels + b"}"
    return orjson.dumps(record)


#: (kind, line): "valid" lines must be stored exactly once, "unstorable" ones quarantined, "other" anything.
lines = st.lists(
    st.one_of(
        valid_records().map(lambda r: ("valid", orjson.dumps(r))),
        unstorable_lines().map(lambda line: ("unstorable", line)),
        json_values.map(lambda v: ("other", orjson.dumps(v))),
        st.binary(max_size=30).map(lambda b: ("other", b.replace(b"\n", b" "))),
    ),
    max_size=12,
)


def _count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)


def _stored(engine: Engine, hashes: set[str]) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(log_records.c.record_hash, log_records.c.data).where(log_records.c.record_hash.in_(hashes))
        )
        return {r.record_hash: r.data for r in rows}


def _check_valid_stored_once(engine: Engine, valid: list[bytes]) -> None:
    by_hash = {record_hash(orjson.loads(line)): orjson.loads(line) for line in valid}
    stored = _stored(engine, set(by_hash))
    assert set(stored) == set(by_hash)  # the unique key makes "once" hold; this makes "stored" hold
    for key, record in by_hash.items():
        assert orjson.loads(stored[key]) == record


def test_every_line_is_accounted_for_and_every_valid_record_stored_once(store_url: str) -> None:
    engine = open_store(store_url)
    examples: list[int] = []

    @PROPERTY_SETTINGS
    @given(lines)
    def check(drawn: list[tuple[str, bytes]]) -> None:
        examples.append(len(drawn))
        body = [line for _, line in drawn]
        non_blank = sum(1 for line in body if line.strip())
        records_before = _count(engine, log_records)
        report = ingest_lines(engine, body, source="property", batch_size=4)
        assert report.error is None
        assert report.accepted + report.duplicates + report.quarantined == non_blank
        assert _count(engine, log_records) - records_before == report.accepted
        assert report.quarantined >= sum(1 for kind, _ in drawn if kind == "unstorable")
        _check_valid_stored_once(engine, [line for kind, line in drawn if kind == "valid"])

        quarantine_before = _count(engine, quarantined_records)
        again = ingest_lines(engine, body, source="property", batch_size=4)
        assert again.accepted == 0
        assert again.duplicates + again.quarantined == non_blank
        assert (
            _count(engine, quarantined_records) == quarantine_before
        )  # quarantined once per source and line

    check()
    assert len(examples) >= PROPERTY_SETTINGS.max_examples  # it really ran
    engine.dispose()


def test_every_object_is_accounted_for_and_every_valid_record_stored_once(store_url: str) -> None:
    engine = open_store(store_url)
    examples: list[int] = []

    @PROPERTY_SETTINGS
    @given(lines)
    def check(drawn: list[tuple[str, bytes]]) -> None:
        examples.append(len(drawn))
        items = []
        for _, line in drawn:
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue  # the API and the SDK hand over parsed values only
        records_before = _count(engine, log_records)
        report = ingest_objects(engine, items, source="property", batch_size=4)
        assert report.accepted + report.duplicates + report.quarantined == len(items)
        assert _count(engine, log_records) - records_before == report.accepted
        assert report.quarantined >= sum(1 for kind, _ in drawn if kind == "unstorable")
        _check_valid_stored_once(engine, [line for kind, line in drawn if kind == "valid"])

    check()
    assert len(examples) >= PROPERTY_SETTINGS.max_examples  # it really ran
    engine.dispose()
