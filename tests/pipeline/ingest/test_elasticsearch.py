"""Elasticsearch import against a loopback fake that speaks the real search/scroll protocol
(:mod:`fake_elasticsearch`: a changed query shape fails)."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select

from flywheel.errors import BackendError, DataError, MissingDependencyError
from flywheel.pipeline.ingest.elasticsearch import ingest_elasticsearch
from flywheel.store import ingestions, log_records, open_store, quarantined_records
from pipeline.ingest.fake_elasticsearch import DOCS, FakeElasticsearch, record, serving


@pytest.fixture
def cluster() -> Iterator[tuple[FakeElasticsearch, str]]:
    """Why: each test gets its own fake cluster (state, request log) on an ephemeral loopback port."""
    fake = FakeElasticsearch({"logs": list(DOCS)})
    with serving(fake) as url:
        yield fake, url


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """Why: a fresh SQLite store per test, so counts and rows are this test's own."""
    eng = open_store(f"sqlite:///{tmp_path / 'flywheel.db'}")
    yield eng
    eng.dispose()


def stored(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [orjson.loads(r.data) for r in conn.execute(select(log_records.c.data))]


def ingestion_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(ingestions)))


def scroll_requests(fake: FakeElasticsearch) -> list[tuple[str, str]]:
    return [(m, p) for m, p, *_ in fake.requests]


def test_all_documents_are_imported_page_by_page_and_the_scroll_is_cleared(
    cluster: tuple[FakeElasticsearch, str], engine: Engine
) -> None:
    fake, url = cluster
    progress: list[int] = []
    report = ingest_elasticsearch(engine, url, "logs", page_size=4, on_progress=progress.append)

    assert (report.accepted, report.duplicates, report.quarantined) == (9, 0, 0)
    assert sorted(r["request"]["messages"][0]["content"] for r in stored(engine)) == sorted(
        d["request"]["messages"][0]["content"] for d in DOCS
    )
    # 9 hits in pages of 4: search (4), scroll (4), scroll (1), scroll (0 → done), then clear.
    assert scroll_requests(fake) == [
        ("POST", "/logs/_search"),
        ("POST", "/_search/scroll"),
        ("POST", "/_search/scroll"),
        ("POST", "/_search/scroll"),
        ("DELETE", "/_search/scroll"),
    ]
    _, _, params, body, headers = fake.requests[0]
    assert params["scroll"] == ["2m"] and body["query"] == {"match_all": {}}
    assert headers["accept"].startswith("application/vnd.elasticsearch+json")
    assert fake.cleared == ["scroll-1"] and fake.scrolls == {}
    assert progress[-1] == 9
    (row,) = ingestion_rows(engine)
    assert (row.status, row.source, row.accepted) == ("completed", f"elasticsearch:{url}/logs", 9)


def test_importing_again_stores_nothing_new(cluster: tuple[FakeElasticsearch, str], engine: Engine) -> None:
    _, url = cluster
    ingest_elasticsearch(engine, url, "logs")
    again = ingest_elasticsearch(engine, url, "logs")
    assert (again.accepted, again.duplicates) == (0, 9)
    assert len(stored(engine)) == 9


def test_workload_and_client_filters_are_sent_to_the_cluster(
    cluster: tuple[FakeElasticsearch, str], engine: Engine
) -> None:
    fake, url = cluster
    report = ingest_elasticsearch(engine, url, "logs", workload_id="wl-a", client_id="cli-1", page_size=2)

    assert report.accepted == 5
    assert {(r["workload_id"], r["client_id"]) for r in stored(engine)} == {("wl-a", "cli-1")}
    assert fake.requests[0][3]["query"] == {
        "bool": {
            "filter": [
                {"match": {"workload_id": {"query": "wl-a", "operator": "and"}}},
                {"match": {"client_id": {"query": "cli-1", "operator": "and"}}},
            ]
        }
    }
    only_workload = ingest_elasticsearch(engine, url, "logs", workload_id="wl-b")
    assert only_workload.accepted == 3


def test_loosely_matching_documents_are_not_imported_under_a_filter(
    cluster: tuple[FakeElasticsearch, str], engine: Engine
) -> None:
    """On a text-mapped field the cluster may return near matches; only exact ids are imported."""
    fake, url = cluster
    original = fake._search

    def loose_search(index: str, params: dict[str, list[str]], body: dict[str, Any]) -> Any:
        return original(index, params, {**body, "query": {"match_all": {}}})

    fake._search = loose_search  # type: ignore[method-assign]
    report = ingest_elasticsearch(engine, url, "logs", workload_id="wl-b")
    assert report.accepted == 3
    assert {r["workload_id"] for r in stored(engine)} == {"wl-b"}


def test_broken_documents_are_quarantined_and_their_neighbours_stored(
    cluster: tuple[FakeElasticsearch, str], engine: Engine
) -> None:
    fake, url = cluster
    no_response = {k: v for k, v in record(20).items() if k != "response"}
    bad_time = {**record(21), "timestamp": "yesterday"}
    fake.indices["mixed"] = [record(1), no_response, record(2), bad_time, record(1)]

    report = ingest_elasticsearch(engine, url, "mixed", page_size=2)

    assert (report.accepted, report.duplicates, report.quarantined) == (2, 1, 2)
    assert dict(report.quarantine_reasons) == {"missing response": 1, "invalid timestamp": 1}
    with engine.connect() as conn:
        reasons = sorted(r.reason for r in conn.execute(select(quarantined_records)))
    assert reasons[0].startswith("invalid timestamp") and reasons[1] == "missing response"


def test_missing_index_is_a_data_error_naming_the_index(
    cluster: tuple[FakeElasticsearch, str], engine: Engine
) -> None:
    _, url = cluster
    with pytest.raises(DataError, match=r"index 'nope' does not exist at http://127\.0\.0\.1:\d+"):
        ingest_elasticsearch(engine, url, "nope")
    (row,) = ingestion_rows(engine)
    assert row.status == "failed" and "does not exist" in row.error


def test_unreachable_cluster_is_a_backend_error_without_the_password(engine: Engine) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://elastic:hunter2-secret@127.0.0.1:{port}"
    with pytest.raises(BackendError, match="Cannot reach Elasticsearch") as info:
        ingest_elasticsearch(engine, url, "logs", max_retries=0)
    message = str(info.value)
    assert f"http://elastic:***@127.0.0.1:{port}" in message
    assert "hunter2-secret" not in message
    (row,) = ingestion_rows(engine)
    assert "hunter2-secret" not in row.source + (row.error or "")


def test_credentials_in_the_url_and_api_keys_are_sent(
    cluster: tuple[FakeElasticsearch, str], engine: Engine
) -> None:
    fake, url = cluster
    fake.api_key = "a2V5OnNlY3JldA=="
    with pytest.raises(BackendError, match="refused the credentials"):
        ingest_elasticsearch(engine, url, "logs", api_key="wrong")
    assert ingest_elasticsearch(engine, url, "logs", api_key=fake.api_key).accepted == 9

    fake.api_key = None
    with_user = url.replace("http://", "http://reader:pw@")
    ingest_elasticsearch(engine, with_user, "logs")
    assert fake.requests[-1][4]["authorization"].startswith("Basic ")


def test_a_server_that_is_not_elasticsearch_is_rejected(
    cluster: tuple[FakeElasticsearch, str], engine: Engine
) -> None:
    fake, url = cluster
    fake.product_header = False
    with pytest.raises(BackendError, match="not Elasticsearch"):
        ingest_elasticsearch(engine, url, "logs")


def test_failure_part_way_keeps_what_was_read_and_marks_the_ingestion_failed(
    cluster: tuple[FakeElasticsearch, str], engine: Engine
) -> None:
    fake, url = cluster
    fake.fail_on_scroll_page = 2  # the search and the first scroll page succeed, the second scroll fails
    with pytest.raises(BackendError, match=r"all shards failed|search_phase_execution_exception"):
        ingest_elasticsearch(engine, url, "logs", page_size=3, batch_size=2)

    assert len(stored(engine)) == 6  # two pages were read and written before the failure
    (row,) = ingestion_rows(engine)
    assert row.status == "failed" and row.accepted == 6
    assert fake.cleared == ["scroll-1"]  # the scroll context is released even on failure


def test_missing_client_library_names_the_extra(monkeypatch: pytest.MonkeyPatch, engine: Engine) -> None:
    monkeypatch.setitem(sys.modules, "elasticsearch", None)  # makes `import elasticsearch` raise ImportError
    with pytest.raises(MissingDependencyError, match=r"flywheel\[service\]"):
        ingest_elasticsearch(engine, "http://127.0.0.1:9200", "logs")
