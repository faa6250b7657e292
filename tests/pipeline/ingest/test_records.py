"""Record checks and identity: pure functions, no store."""

from __future__ import annotations

import orjson
import pytest

from factories import chat_record
from flywheel.pipeline.ingest import PreparedRecord, Rejection, parse_timestamp, prepare_record, record_hash

NOW = 1_800_000_000.0


def test_identity_ignores_key_order_but_not_content() -> None:
    a = chat_record()
    b = dict(reversed(list(a.items())))
    assert record_hash(a) == record_hash(b)
    assert record_hash(a).startswith("h1:")
    assert record_hash(a) != record_hash(chat_record(timestamp=1_760_000_001))


def test_two_calls_with_the_same_prompt_are_two_records() -> None:
    first = prepare_record(chat_record(timestamp=1), now=NOW)
    second = prepare_record(chat_record(timestamp=2), now=NOW)
    assert isinstance(first, PreparedRecord) and isinstance(second, PreparedRecord)
    assert first.record_hash != second.record_hash


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1_760_000_000, 1_760_000_000.0),
        (1_760_000_000_123, 1_760_000_000.123),
        ("1760000000", 1_760_000_000.0),
        ("2025-10-09T08:53:20Z", 1_760_000_000.0),
        ("2025-10-09T08:53:20", 1_760_000_000.0),
        ("2025-10-09T10:53:20+02:00", 1_760_000_000.0),
        (1_760_000_000.5, 1_760_000_000.5),
    ],
)
def test_timestamps_in_seconds_milliseconds_or_iso(value: object, expected: float) -> None:
    assert parse_timestamp(value) == pytest.approx(expected)


@pytest.mark.parametrize("value", ["yesterday", True, -5, {"t": 1}, float("nan")])
def test_bad_timestamps_are_rejected(value: object) -> None:
    assert isinstance(parse_timestamp(value), Rejection)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda r: r.pop("request"), "missing request"),
        (lambda r: r["request"].update(messages=[]), "missing or empty request.messages"),
        (lambda r: r["request"].pop("messages"), "missing or empty request.messages"),
        (lambda r: r["request"].update(messages=["hi"]), "request.messages item is not an object"),
        (lambda r: r.pop("response"), "missing response"),
        (lambda r: r["response"].update(choices=[]), "missing or empty response.choices"),
        (lambda r: r["response"]["choices"][0].pop("message"), "response choice without message"),
        (lambda r: r.pop("workload_id"), "missing workload_id"),
        (lambda r: r.update(workload_id=""), "empty workload_id"),
        (lambda r: r.update(client_id="  "), "empty client_id"),
        (lambda r: r.update(client_id=7), "client_id is not a string"),
        (lambda r: r.update(timestamp="soon"), "invalid timestamp"),
    ],
)
def test_each_broken_shape_has_its_reason(mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
    record = chat_record()
    mutate(record)
    result = prepare_record(record, now=NOW)
    assert isinstance(result, Rejection)
    assert result.reason == reason


def test_extra_top_level_fields_are_kept() -> None:
    record = chat_record(session_id="s-1", tags=["a"])
    result = prepare_record(record, raw=None, now=NOW)
    assert isinstance(result, PreparedRecord)
    assert '"session_id":"s-1"' in result.data


def test_missing_timestamp_is_filled_without_changing_identity() -> None:
    record = chat_record(timestamp=None)
    first = prepare_record(record, now=NOW)
    second = prepare_record(record, now=NOW + 100)
    assert isinstance(first, PreparedRecord) and isinstance(second, PreparedRecord)
    assert first.timestamp == NOW
    assert first.record_hash == second.record_hash


def test_loader_format_needs_ids_and_becomes_a_record() -> None:
    line = {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
    }
    assert prepare_record(line, now=NOW) == Rejection(
        "loader-format line needs --workload-id and --client-id"
    )
    result = prepare_record(line, workload_id="w", client_id="c", now=NOW)
    assert isinstance(result, PreparedRecord)
    assert (result.workload_id, result.client_id) == ("w", "c")
    assert '"tools"' in result.data and '"choices"' in result.data


def test_loader_line_without_assistant_answer_is_rejected() -> None:
    line = {"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "again"}]}
    result = prepare_record(line, workload_id="w", client_id="c", now=NOW)
    assert isinstance(result, Rejection) and "assistant" in result.reason


def test_cli_ids_override_the_records_own() -> None:
    result = prepare_record(chat_record(workload_id="a"), workload_id="b", client_id="c", now=NOW)
    assert isinstance(result, PreparedRecord)
    assert (result.workload_id, result.client_id) == ("b", "c")
    assert '"workload_id":"b"' in result.data


# -- store limits: the same rules on every store, checked before anything is written ---------------------------


def _nested(depth: int) -> list[object]:
    """``depth`` levels of arrays, the innermost empty (``[[[]]]`` is 3)."""
    value: list[object] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_a_record_nested_deeper_than_hashing_allows_is_rejected_not_raised() -> None:
    # The record is level 1, "extra" level 2: the innermost array is at level 2 + depth - 1.
    deep = prepare_record(chat_record(extra=_nested(300)), now=NOW)
    assert deep == Rejection("nested too deeply", "more than 254 levels of objects and arrays")
    just_fits = prepare_record(chat_record(extra=_nested(253)), now=NOW)  # 254 levels in all
    assert isinstance(just_fits, PreparedRecord)
    assert isinstance(prepare_record(chat_record(extra=_nested(254)), now=NOW), Rejection)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("workload_id", "w" * 256, "workload_id too long"),
        ("client_id", "c" * 1000, "client_id too long"),
        ("workload_id", "news\x00classifier", "workload_id contains NUL"),
        ("client_id", "\x00", "client_id contains NUL"),
    ],
)
def test_ids_the_postgresql_columns_cannot_hold_are_rejected(field: str, value: str, reason: str) -> None:
    result = prepare_record(chat_record(**{field: value}), now=NOW)
    assert isinstance(result, Rejection) and result.reason == reason


def test_ids_of_exactly_the_column_width_are_accepted() -> None:
    result = prepare_record(chat_record(workload_id="w" * 255, client_id="é" * 255), now=NOW)
    assert isinstance(result, PreparedRecord)


def test_a_record_larger_than_the_limit_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    from flywheel.pipeline.ingest import _limits

    monkeypatch.setattr(_limits, "MAX_RECORD_BYTES", 2000)
    big = prepare_record(chat_record("x" * 3000), now=NOW)
    assert isinstance(big, Rejection) and big.reason == "record too large"
    raw = orjson.dumps(chat_record("é" * 600)).decode()  # 600 characters, 1200 bytes: under the limit
    assert isinstance(prepare_record(orjson.loads(raw), raw=raw, now=NOW), PreparedRecord)
    raw = orjson.dumps(chat_record("é" * 1100)).decode()  # under 2000 characters, over 2000 bytes
    large = prepare_record(orjson.loads(raw), raw=raw, now=NOW)
    assert isinstance(large, Rejection) and large.reason == "record too large"


def test_sdk_values_json_cannot_hold_are_rejected() -> None:
    for bad in ({1, 2}, 2**70, "\ud800"):
        result = prepare_record(chat_record(extra=bad), now=NOW)
        assert isinstance(result, Rejection) and result.reason == "not serializable as JSON", bad
