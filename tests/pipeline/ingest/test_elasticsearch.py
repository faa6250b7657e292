"""Elasticsearch import against a loopback fake that speaks the real search/scroll protocol.

No Elasticsearch server can run here. The fake answers ``POST /{index}/_search?scroll=…``, ``POST /_search/scroll``
and ``DELETE /_search/scroll`` like Elasticsearch 8 (bodies, error shapes and the ``X-Elastic-Product`` header the
official client checks), and evaluates the small query subset the importer sends, so a changed query shape fails.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select

from flywheel.errors import BackendError, DataError, MissingDependencyError
from flywheel.pipeline.ingest.elasticsearch import ingest_elasticsearch
from flywheel.store import ingestions, log_records, open_store, quarantined_records


class UnsupportedQuery(Exception):
    pass


def _matches(doc: dict[str, Any], query: dict[str, Any]) -> bool:
    """Evaluate the query subset the importer may send: match_all, bool.filter/must of match/term (keyword fields)."""
    ((kind, body),) = query.items()
    if kind == "match_all":
        return True
    if kind == "bool":
        clauses = [*body.get("filter", []), *body.get("must", [])]
        if set(body) - {"filter", "must"}:
            raise UnsupportedQuery(str(body))
        return all(_matches(doc, clause) for clause in clauses)
    if kind in ("match", "term"):
        ((field, spec),) = body.items()
        value = spec.get("query", spec.get("value")) if isinstance(spec, dict) else spec
        return doc.get(field) == value
    raise UnsupportedQuery(kind)


class FakeElasticsearch:
    """State of the fake cluster: indices, open scroll contexts and every request received."""

    def __init__(self, indices: dict[str, list[dict[str, Any]]]) -> None:
        self.indices = indices
        self.requests: list[tuple[str, str, dict[str, list[str]], Any, dict[str, str]]] = []
        self.scrolls: dict[str, tuple[list[dict[str, Any]], int, int]] = {}
        self.cleared: list[str] = []
        self.product_header = True
        self.api_key: str | None = None
        self.fail_on_scroll_page: int | None = None
        self._next_scroll = 0
        self._lock = threading.Lock()

    def handle(
        self, method: str, path: str, params: dict[str, list[str]], body: Any, headers: dict[str, str]
    ):
        self.requests.append((method, path, params, body, headers))
        if self.api_key is not None and headers.get("authorization") != f"ApiKey {self.api_key}":
            return 401, _error("security_exception", "unable to authenticate with provided credentials")
        parts = [p for p in path.split("/") if p]
        if method == "POST" and len(parts) == 2 and parts[1] == "_search":
            return self._search(parts[0], params, body or {})
        if parts == ["_search", "scroll"] and method == "POST":
            return self._scroll(body["scroll_id"])
        if parts == ["_search", "scroll"] and method == "DELETE":
            ids = body["scroll_id"]
            ids = ids if isinstance(ids, list) else [ids]
            freed = 0
            with self._lock:
                for scroll_id in ids:
                    freed += self.scrolls.pop(scroll_id, None) is not None
                    self.cleared.append(scroll_id)
            return 200, {"succeeded": True, "num_freed": freed}
        return 400, _error("illegal_argument_exception", f"unexpected {method} {path}")

    def _search(self, index: str, params: dict[str, list[str]], body: dict[str, Any]):
        if index not in self.indices:
            error = _error("index_not_found_exception", f"no such index [{index}]")
            error["error"]["index"] = index
            return 404, error
        if "scroll" not in params:
            return 400, _error("illegal_argument_exception", "the importer must scroll")
        size = int(body.get("size", params.get("size", ["10"])[0]))
        try:
            docs = [d for d in self.indices[index] if _matches(d, body.get("query", {"match_all": {}}))]
        except (UnsupportedQuery, ValueError) as exc:
            return 400, _error("parsing_exception", f"unsupported query: {exc}")
        with self._lock:
            self._next_scroll += 1
            scroll_id = f"scroll-{self._next_scroll}"
            self.scrolls[scroll_id] = (docs, 0, size)
        return self._page(scroll_id, index)

    def _scroll(self, scroll_id: str):
        if scroll_id not in self.scrolls:
            return 404, _error(
                "search_context_missing_exception", f"No search context found for id [{scroll_id}]"
            )
        pages = sum(1 for m, p, *_ in self.requests if (m, p) == ("POST", "/_search/scroll"))
        if self.fail_on_scroll_page is not None and pages >= self.fail_on_scroll_page:
            return 500, _error("search_phase_execution_exception", "all shards failed")
        return self._page(scroll_id, "logs")

    def _page(self, scroll_id: str, index: str):
        with self._lock:
            docs, position, size = self.scrolls[scroll_id]
            page = docs[position : position + size]
            self.scrolls[scroll_id] = (docs, position + len(page), size)
        hits = [
            {
                "_index": index,
                "_id": str(position + i),
                "_score": None,
                "_source": doc,
                "sort": [position + i],
            }
            for i, doc in enumerate(page)
        ]
        return 200, {
            "_scroll_id": scroll_id,
            "took": 1,
            "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {"total": {"value": len(docs), "relation": "eq"}, "max_score": None, "hits": hits},
        }


def _error(kind: str, reason: str) -> dict[str, Any]:
    cause = {"type": kind, "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": 0}


def _handler(cluster: FakeElasticsearch) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, payload = cluster.handle(
                self.command, url.path, urllib.parse.parse_qs(url.query), body, headers
            )
            if isinstance(payload, dict) and "status" in payload:
                payload["status"] = status
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/vnd.elasticsearch+json;compatible-with=8")
            self.send_header("content-length", str(len(data)))
            if cluster.product_header:
                self.send_header("X-Elastic-Product", "Elasticsearch")
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = do_HEAD = _serve

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

    return Handler


def record(n: int, workload: str = "wl-a", client: str = "cli-1") -> dict[str, Any]:
    """A document as the reference writes it (epoch seconds, blueprint schema)."""
    return {
        "timestamp": 1_700_000_000 + n,
        "workload_id": workload,
        "client_id": client,
        "request": {"model": "big", "messages": [{"role": "user", "content": f"question {n}"}]},
        "response": {"choices": [{"index": 0, "message": {"role": "assistant", "content": f"answer {n}"}}]},
    }


DOCS = [record(n) for n in range(5)] + [record(n, "wl-b") for n in range(5, 8)] + [record(8, "wl-a", "cli-2")]


@pytest.fixture
def cluster() -> Iterator[tuple[FakeElasticsearch, str]]:
    """Why: each test gets its own fake cluster (state, request log) on an ephemeral loopback port."""
    fake = FakeElasticsearch({"logs": list(DOCS)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


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


def test_cli_imports_from_elasticsearch_and_prints_counts(
    cluster: tuple[FakeElasticsearch, str], tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from flywheel.cli.main import cli

    _, url = cluster
    db = tmp_path / "cli.db"
    env = {"FLYWHEEL_HOME": str(tmp_path), "FLYWHEEL_DATABASE_URL": f"sqlite:///{db}"}
    args = ["ingest", "--from-elasticsearch", url, "--index", "logs", "--workload-id", "wl-b", "--json"]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert (counts["accepted"], counts["duplicates"], counts["quarantined"]) == (3, 0, 0)

    missing = CliRunner().invoke(cli, ["ingest", "--from-elasticsearch", url, "--index", "nope"], env=env)
    assert missing.exit_code == 2 and "index 'nope' does not exist" in missing.output
