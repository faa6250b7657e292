"""A loopback fake of Elasticsearch 8 that speaks the real search/scroll protocol, for the importer's tests.

No Elasticsearch server can run here. The fake answers ``POST /{index}/_search?scroll=…``, ``POST /_search/scroll``
and ``DELETE /_search/scroll`` like Elasticsearch 8 (bodies, error shapes and the ``X-Elastic-Product`` header the
official client checks), and evaluates the small query subset the importer sends, so a changed query shape fails.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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


@contextmanager
def serving(fake: FakeElasticsearch) -> Iterator[str]:
    """Serve ``fake`` on an ephemeral loopback port; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
