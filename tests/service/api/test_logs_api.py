"""`POST /api/logs` and `/health` on the real app, with authentication."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from fastapi.testclient import TestClient

from factories import chat_record
from flywheel.config import FlywheelConfig, Settings
from flywheel.service.api import create_app


def _client(url: str, home: str, keys: str = "") -> TestClient:
    env = {"FLYWHEEL_DATABASE_URL": url, "FLYWHEEL_HOME": home, "FLYWHEEL_API_KEYS": keys}
    return TestClient(create_app(Settings.from_env(FlywheelConfig(), None, env)))


@pytest.fixture
def client(store_url: str, home) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with _client(store_url, str(home)) as c:
        yield c


def test_health(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"


def test_single_record_then_duplicate(client: TestClient) -> None:
    first = client.post("/api/logs", json=chat_record())
    assert first.status_code == 200
    assert (first.json()["accepted"], first.json()["duplicates"]) == (1, 0)
    second = client.post("/api/logs", json=chat_record())
    assert (second.json()["accepted"], second.json()["duplicates"]) == (0, 1)


def test_array_with_bad_items_reports_each(client: TestClient) -> None:
    body = [chat_record("a"), {"workload_id": "w"}, chat_record("b"), 42]
    out = client.post("/api/logs", json=body).json()
    assert (out["total"], out["accepted"], out["quarantined"]) == (4, 2, 2)
    assert [e["index"] for e in out["errors"]] == [1, 3]
    assert out["quarantine_reasons"] == {"missing client_id": 1, "not a JSON object": 1}


def test_body_that_is_not_json_is_400(client: TestClient) -> None:
    response = client.post("/api/logs", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["detail"]


def test_api_keys_are_required_when_configured(sqlite_url: str, home) -> None:  # type: ignore[no-untyped-def]
    with _client(sqlite_url, str(home), keys="k1,k2") as c:
        assert c.post("/api/logs", json=chat_record()).status_code == 401
        bad = c.post("/api/logs", json=chat_record(), headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        ok = c.post("/api/logs", json=chat_record(), headers={"Authorization": "Bearer k2"})
        assert ok.status_code == 200
        assert c.get("/health").status_code == 200  # health stays open for probes


def _deep_item(levels: int) -> bytes:
    record = orjson.dumps(chat_record("deep"))
    return record[:-1] + b',"extra":' + b"[" * levels + b"]" * levels + b"}"


def test_a_deeply_nested_item_is_quarantined_and_its_neighbours_stored(client: TestClient) -> None:
    # 1021 levels inside the record, inside the body's array: 1023 levels, which the JSON parser reads.
    body = (
        b"["
        + orjson.dumps(chat_record("a"))
        + b","
        + _deep_item(1021)
        + b","
        + orjson.dumps(chat_record("b"))
        + b"]"
    )
    response = client.post("/api/logs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    out = response.json()
    assert (out["accepted"], out["quarantined"]) == (2, 1)
    assert out["errors"] == [
        {"index": 1, "reason": "nested too deeply", "detail": "more than 254 levels of objects and arrays"}
    ]
    quarantined = client.get("/api/quarantine").json()["records"]
    assert len(quarantined) == 1 and quarantined[0]["raw"].startswith('{"workload_id"')


def test_ids_postgresql_cannot_hold_are_quarantined_on_every_store(client: TestClient) -> None:
    body = [chat_record("a"), chat_record("b", workload_id="w" * 256), chat_record("c", client_id="x\x00y")]
    out = client.post("/api/logs", json=body).json()
    assert (out["accepted"], out["quarantined"]) == (1, 2)
    assert out["quarantine_reasons"] == {"workload_id too long": 1, "client_id contains NUL": 1}


def test_more_items_than_the_cap_is_413_saying_the_cap(client: TestClient) -> None:
    response = client.post("/api/logs", content=b"[" + b",".join([b"1"] * 10_001) + b"]")
    assert response.status_code == 413
    assert response.json() == {
        "detail": "Body holds 10001 records, more than 10000; send them in smaller batches."
    }
    assert client.get("/api/quarantine").json()["total"] == 0


def test_a_body_over_the_size_cap_is_413_before_it_is_read(client: TestClient) -> None:
    from flywheel.service.api import _logs

    response = client.post(
        "/api/logs",
        content=b"[]",
        headers={"content-type": "application/json", "content-length": str(_logs.MAX_BODY_BYTES + 1)},
    )
    assert response.status_code == 413
    assert str(_logs.MAX_BODY_BYTES) in response.json()["detail"]


def test_a_streamed_body_over_the_size_cap_is_413(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flywheel.service.api import _logs

    monkeypatch.setattr(_logs, "MAX_BODY_BYTES", 1000)
    chunks = (b"[" + b"1," * 400 for _ in range(3))  # no content-length: sent chunked
    response = client.post("/api/logs", content=chunks, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"detail": "Body larger than 1000 bytes; send records in smaller batches."}


def test_quarantine_rows_of_one_request_are_bounded_and_repeats_add_none(client: TestClient) -> None:
    body = [*range(3000), chat_record()]
    first = client.post("/api/logs", json=body).json()
    assert (first["accepted"], first["quarantined"]) == (1, 3000)
    assert first["quarantine_reasons"] == {"not a JSON object": 3000}
    assert len(first["errors"]) == 1000
    listed = client.get("/api/quarantine", params={"limit": 1}).json()
    assert listed["total"] == 1001  # 1000 items one by one, then one row counting the other 2000
    assert listed["records"][0]["reason"].startswith("not kept individually: 2000 more rejected items")
    again = client.post("/api/logs", json=body).json()
    assert (again["duplicates"], again["quarantined"]) == (1, 3000)
    assert client.get("/api/quarantine", params={"limit": 1}).json()["total"] == 1001


def test_a_bom_is_skipped_and_utf16_gets_an_encoding_hint(client: TestClient) -> None:
    headers = {"content-type": "application/json"}
    with_bom = client.post(
        "/api/logs", content=b"\xef\xbb\xbf" + orjson.dumps(chat_record()), headers=headers
    )
    assert with_bom.status_code == 200 and with_bom.json()["accepted"] == 1
    utf16 = client.post(
        "/api/logs", content=orjson.dumps(chat_record()).decode().encode("utf-16"), headers=headers
    )
    assert utf16.status_code == 400
    assert "UTF-16" in utf16.json()["detail"] and "send it as UTF-8" in utf16.json()["detail"]
