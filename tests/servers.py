"""Serving an ASGI app for a test: uvicorn on an ephemeral loopback port, in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: Bound on waiting for the server to come up.
START_TIMEOUT_S = 20.0


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free 127.0.0.1 port; yield its base URL; stop it on exit."""
    import uvicorn

    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY on accepted connections only when the listening
    # socket's protocol says TCP, and without it every small reply waits ~40 ms (Nagle plus delayed ACK).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.005)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


#: One canned answer: status, content type, body.
Answer = tuple[int, str, bytes]


@contextmanager
def canned_answers(seen_authorization: list[str | None] | None = None) -> Iterator[tuple[str, list[Answer]]]:
    """A plain HTTP server on loopback that answers each GET with the next answer the test appends to the yielded
    list (for answers no flywheel server gives: a web page, a proxy's 502). Each request's ``Authorization`` header
    (or None) is appended to ``seen_authorization`` when given."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    answers: list[Answer] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if seen_authorization is not None:
                seen_authorization.append(self.headers.get("Authorization"))
            status, content_type, body = answers.pop(0)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", answers
    finally:
        httpd.shutdown()
        httpd.server_close()
