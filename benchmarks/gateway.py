"""Gateway overhead: the ``openai`` client calling a loopback upstream directly vs through flywheel's ``/v1``.

Three processes: an upstream that answers at once (a raw ASGI app under uvicorn: one canned chat.completion, or 100
``chat.completion.chunk`` events then ``data: [DONE]`` when the request says ``"stream": true``), flywheel's
gateway (``create_app`` under uvicorn, logged at the level ``flywheel serve`` uses, storing into SQLite or a
throw-away PostgreSQL database), and this process, the load: ``AsyncOpenAI`` with N concurrent tasks. Each case runs
the same load directly against the upstream and then through the gateway; every call asks a different question, so
the records the gateway stored can be counted per call.

Figures, one JSON line per path and case: latency percentiles per request (and, for streams, time to first chunk
and the gap between chunks), requests/s and the CPU milliseconds each process spent per call, for both paths; then
the gateway's added latency (gateway percentile − direct percentile) and records stored vs calls sent (waiting up
to ``--store-timeout`` s for the background sink). Tables follow. On a busy machine the CPU per call is the
steadiest figure: 1000 / (gateway CPU ms per call) is what one gateway process can serve on one core.
Targets on a 2-core machine: added p50 ≤ 2 ms and p99 ≤ 10 ms at 16 clients, ≥ 1,000 non-streamed requests/s
through the gateway, 100% of calls logged. Nothing is asserted (timings are not tests).

    .venv/bin/python benchmarks/gateway.py                          # 1/16/128 clients, SQLite and PostgreSQL
    .venv/bin/python benchmarks/gateway.py --quick                  # a smoke run (seconds)
    .venv/bin/python benchmarks/gateway.py --clients 16 --stores sqlite --no-stream
    .venv/bin/python benchmarks/gateway.py --profile /tmp/prof      # the gateway under cProfile (slower)
    .venv/bin/python benchmarks/gateway.py --load aiohttp           # a cheaper client: the gateway's own ceiling

Where a figure needs explaining, profile the gateway: ``--profile DIR`` (cProfile, event-loop thread only) or
``py-spy record --gil --threads --pid PID`` on the ``--serve gateway`` child while a case runs.

The three processes share the machine's cores, so the load generator's and the upstream's CPU time slow the gateway
down too; the direct run pays the same client and upstream costs, which is what the subtraction removes.
PostgreSQL: a database ``flywheel_bench_<random>`` is created on the server at ``--pg-url`` and dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

MODEL = "teacher"
STREAM_CHUNKS = 100
FLYWHEEL_KEY = "fw-bench-key"
UPSTREAM_KEY = "upstream-bench-key"
UPSTREAM_KEY_ENV = "FLYWHEEL_BENCH_UPSTREAM_KEY"
#: Bound on a child server's start-up (the gateway migrates its store first).
START_TIMEOUT_S = 60.0
#: The targets of the issue, at this many concurrent clients.
TARGET_CLIENTS = 16
TARGET_ADDED_P50_MS = 2.0
TARGET_ADDED_P99_MS = 10.0
TARGET_RPS = 1000.0


# -- the upstream: as cheap as an HTTP server in Python gets ---------------------------------------------------


def _canned_replies() -> tuple[bytes, list[bytes]]:
    """The completion, and the stream's events (the last one ``[DONE]``), encoded once."""
    created = 1_700_000_000
    completion = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": created,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "A short answer."},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
    }
    events = []
    for i in range(STREAM_CHUNKS):
        delta: dict[str, Any] = {"content": f"tok{i} "}
        if i == 0:
            delta["role"] = "assistant"
        chunk = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": created,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "delta": delta,
                    "logprobs": None,
                    "finish_reason": "stop" if i == STREAM_CHUNKS - 1 else None,
                }
            ],
        }
        events.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return orjson.dumps(completion), events


def upstream_app() -> Callable[..., Awaitable[None]]:
    """A raw ASGI app (no framework): ``POST …/chat/completions`` answers at once, streamed if asked."""
    completion, events = _canned_replies()
    json_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(completion)).encode()),
    ]
    sse_headers = [(b"content-type", b"text/event-stream")]
    not_found = {"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["method"] != "POST" or not scope["path"].endswith("/chat/completions"):
            await send(not_found)
            await send({"type": "http.response.body", "body": b""})
            return
        if not orjson.loads(body).get("stream"):
            await send({"type": "http.response.start", "status": 200, "headers": json_headers})
            await send({"type": "http.response.body", "body": completion})
            return
        await send({"type": "http.response.start", "status": 200, "headers": sse_headers})
        for event in events[:-1]:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": events[-1]})

    return app


# -- the child processes ----------------------------------------------------------------------------------------


class _NoExecutor:
    """Runs no jobs: the gateway needs none, and an idle job worker would only add noise."""

    def submit(self, job_id: str) -> None:
        pass


def serve_child(role: str, ready_file: Path, profile: Path | None, access_log: bool) -> None:
    """Run the upstream or the gateway on a free loopback port; write the port to ``ready_file`` once serving."""
    import socket

    import uvicorn

    app: Any
    lifespan: Literal["on", "off"]
    if role == "upstream":
        app, log_level, lifespan = upstream_app(), "warning", "off"
    else:
        from flywheel.config import FlywheelConfig, Settings
        from flywheel.service.api import create_app

        config = FlywheelConfig.model_validate(
            {
                "gateway": {
                    "upstream": {
                        "base_url": os.environ["FLYWHEEL_BENCH_UPSTREAM"],
                        "api_key_env": UPSTREAM_KEY_ENV,
                    }
                }
            }
        )
        settings = Settings.from_env(config, None, os.environ)
        app = create_app(settings, executor=_NoExecutor())
        # As `flywheel serve` runs it: uvicorn's defaults, at the configured log level (INFO: access log on).
        log_level, lifespan = settings.config.logging_config.level.lower(), "on"

    # proto must say TCP: asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and without it
    # Nagle's algorithm holds a response's body behind its headers until the client's delayed ACK (40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if not self.should_exit:
                partial = ready_file.with_suffix(".tmp")
                partial.write_text(str(port))
                partial.replace(ready_file)  # the parent never reads half a port number

    server = Server(uvicorn.Config(app, log_level=log_level, lifespan=lifespan, access_log=access_log))
    # uvicorn shuts down on SIGTERM, then raises it again for the handler it found: make that one return, so
    # that the profile below is still written.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    if profile is None:
        server.run(sockets=[sock])
        return
    import cProfile

    profiler = cProfile.Profile()  # the event loop's thread only: the sink's thread is not in it
    profiler.enable()
    try:
        server.run(sockets=[sock])
    finally:
        profiler.disable()
        profiler.dump_stats(profile)


@dataclass(frozen=True)
class Child:
    """A server in its own process."""

    url: str
    pid: int

    def cpu_s(self) -> float:
        """CPU seconds the process has used so far (every thread: the gateway's sink included)."""
        import psutil

        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)


@contextmanager
def child_server(
    role: str, tmp: Path, env: dict[str, str], *, profile: Path | None = None, access_log: bool = True
) -> Iterator[Child]:
    """Start ``serve_child(role)`` in its own process; yield it; stop it (gracefully) on exit."""
    ready = tmp / f"{role}-{secrets.token_hex(4)}.port"
    log = tmp / f"{role}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", role, "--ready-file", str(ready)]
    if profile is not None:
        cmd += ["--profile", str(profile)]
    if not access_log:
        cmd.append("--no-access-log")
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (ready.exists() and ready.read_text()):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:]
                raise SystemExit(f"the {role} process did not start (exit code {proc.poll()}):\n{tail}")
            time.sleep(0.02)
        yield Child(f"http://127.0.0.1:{int(ready.read_text())}", proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)  # uvicorn shuts down cleanly: the sink delivers what is queued
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def database(store: str, tmp: Path, pg_url: str) -> Iterator[str]:
    """A fresh store URL: a SQLite file in ``tmp``, or a new PostgreSQL database dropped afterwards."""
    if store == "sqlite":
        yield f"sqlite:///{tmp / 'gateway-bench.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = make_url(pg_url).set(drivername="postgresql+psycopg")
    name = f"flywheel_bench_{secrets.token_hex(4)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        raise SystemExit(
            f"Could not create a PostgreSQL database at {admin_url.render_as_string()}: {exc}\n"
            "Start the server, pass --pg-url, or run with --stores sqlite."
        ) from exc
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# -- the load ---------------------------------------------------------------------------------------------------


@dataclass
class Load:
    """What one client load measured (seconds)."""

    latencies: list[float] = field(default_factory=list)  # per measured request (a whole stream for streams)
    first_chunk: list[float] = field(default_factory=list)  # streams: request sent → first chunk parsed
    gaps: list[float] = field(default_factory=list)  # streams: between consecutive chunks
    chunks: int = 0
    wall: float = 0.0
    ok: set[str] = field(default_factory=set)  # questions answered with 2xx (warm-up included)
    errors: list[str] = field(default_factory=list)


def question(tag: str, i: int | str) -> str:
    return f"question {tag}-{i}"


def openai_client(base_url: str, api_key: str, connections: int) -> Any:
    """``AsyncOpenAI`` with a pool of ``connections`` kept-alive connections (its default keeps only 100)."""
    import importlib

    import openai

    # openai builds on httpx or, from version 3, on httpx2: take the Limits of whichever its client is made of.
    base = next(c for c in openai.DefaultAsyncHttpxClient.__mro__ if not c.__module__.startswith("openai"))
    http_lib: Any = importlib.import_module(base.__module__.partition(".")[0])
    limits = http_lib.Limits(max_connections=connections, max_keepalive_connections=connections)
    http = openai.DefaultAsyncHttpxClient(limits=limits, timeout=http_lib.Timeout(60.0))
    return openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, http_client=http)


class RawClient:
    """A load generator cheaper than ``openai`` (``--load aiohttp``): the same requests through one aiohttp session,
    the answer read whole, or the stream's events counted as they arrive. It leaves more of the machine to the
    gateway, to show what one gateway process serves when the client is not the bottleneck."""

    def __init__(self, base_url: str, api_key: str) -> None:
        import aiohttp

        self.url = base_url + "/chat/completions"
        self.headers = {"authorization": f"Bearer {api_key}", "content-type": "application/json"}
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def complete(self, content: str) -> None:
        body = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": content}]})
        async with self.session.post(self.url, data=body, headers=self.headers) as reply:
            await reply.read()
            if reply.status != 200:
                raise RuntimeError(f"HTTP {reply.status}")

    async def stream(self, content: str) -> list[float]:
        """The arrival time of each chunk event."""
        body = {"model": MODEL, "messages": [{"role": "user", "content": content}], "stream": True}
        times = []
        async with self.session.post(self.url, data=orjson.dumps(body), headers=self.headers) as reply:
            if reply.status != 200:
                raise RuntimeError(f"HTTP {reply.status}")
            async for line in reply.content:
                if line.startswith(b"data: {"):
                    times.append(time.perf_counter())
        return times

    async def close(self) -> None:
        await self.session.close()


async def client_load(
    base_url: str,
    api_key: str,
    clients: int,
    requests: int,
    stream: bool,
    tag: str,
    load_client: str = "openai",
) -> Load:
    """``clients`` tasks share ``requests`` calls; each first makes one unmeasured call (opening its connection)."""
    raw = RawClient(base_url, api_key) if load_client == "aiohttp" else None
    client = openai_client(base_url, api_key, clients) if raw is None else None
    load = Load()
    counter = itertools.count()
    barrier = asyncio.Barrier(clients)
    started: list[float] = []
    finished: list[float] = []

    async def call(content: str, measured: bool) -> None:
        messages: Any = [{"role": "user", "content": content}]
        start = time.perf_counter()
        try:
            if stream:
                times = []
                if raw is not None:
                    times = await raw.stream(content)
                else:
                    reply = await client.chat.completions.create(model=MODEL, messages=messages, stream=True)
                    async for _ in reply:
                        times.append(time.perf_counter())
                end = time.perf_counter()
                if len(times) != STREAM_CHUNKS:
                    raise RuntimeError(f"{len(times)} chunks instead of {STREAM_CHUNKS}")
                if measured:
                    load.first_chunk.append(times[0] - start)
                    load.gaps.extend(b - a for a, b in itertools.pairwise(times))
                    load.chunks += len(times)
            elif raw is not None:
                await raw.complete(content)
                end = time.perf_counter()
            else:
                await client.chat.completions.create(model=MODEL, messages=messages)
                end = time.perf_counter()
        except Exception as exc:  # counted and shown, never fatal: a failure is itself a finding
            load.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            return
        load.ok.add(content)
        if measured:
            load.latencies.append(end - start)

    async def worker(w: int) -> None:
        await call(question(tag, f"w{w}"), measured=False)
        await barrier.wait()
        started.append(time.perf_counter())
        while (i := next(counter)) < requests:
            await call(question(tag, i), measured=True)
        finished.append(time.perf_counter())

    try:
        await asyncio.gather(*(worker(w) for w in range(clients)))
    finally:
        await (raw if raw is not None else client).close()
    load.wall = max(finished) - min(started)
    return load


def stored_questions(engine: Any, tag: str, sent: set[str], timeout: float) -> tuple[int, float]:
    """How many of ``sent`` the store holds, waiting up to ``timeout`` s for all; and how long that took."""
    from sqlalchemy import func, select

    from flywheel.store import log_records

    pattern = f"%{question(tag, '')}%"
    start = time.monotonic()
    while True:
        with engine.connect() as conn:
            count = conn.execute(
                select(func.count()).select_from(log_records).where(log_records.c.data.like(pattern))
            ).scalar_one()
        if count >= len(sent) or time.monotonic() - start > timeout:
            break
        time.sleep(0.1)
    waited = time.monotonic() - start
    with engine.connect() as conn:
        rows = conn.execute(select(log_records.c.data).where(log_records.c.data.like(pattern))).scalars()
        stored = {orjson.loads(data)["request"]["messages"][-1]["content"] for data in rows}
    return len(stored & sent), waited


# -- figures ----------------------------------------------------------------------------------------------------


def percentile_ms(values: list[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile of ``values`` (seconds), in milliseconds; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return 1000.0 * ordered[max(0, math.ceil(q / 100.0 * len(ordered)) - 1)]


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def summary(load: Load) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "requests": len(load.latencies),
        "errors": len(load.errors),
        "wall_s": round(load.wall, 3),
        "requests_per_s": round(len(load.latencies) / load.wall, 1) if load.wall > 0 else None,
        "p50_ms": _round(percentile_ms(load.latencies, 50)),
        "p99_ms": _round(percentile_ms(load.latencies, 99)),
    }
    if load.chunks:
        figures |= {
            "chunks": load.chunks,
            "first_chunk_p50_ms": _round(percentile_ms(load.first_chunk, 50)),
            "first_chunk_p99_ms": _round(percentile_ms(load.first_chunk, 99)),
            "chunk_gap_p50_ms": _round(percentile_ms(load.gaps, 50), 4),
            "chunk_gap_p99_ms": _round(percentile_ms(load.gaps, 99), 4),
        }
    if load.errors:
        figures["first_error"] = load.errors[0]
    return figures


def added(direct: dict[str, Any], gateway: dict[str, Any], key: str) -> float | None:
    if direct.get(key) is None or gateway.get(key) is None:
        return None
    return round(gateway[key] - direct[key], 4)


def emit(figure: dict[str, Any]) -> None:
    print(json.dumps(figure), flush=True)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _table(header: list[str], rows: list[list[str]]) -> None:
    """Columns as wide as their widest cell; the first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )


def _pair(figures: dict[str, Any], prefix: str) -> str:
    return f"{_ms(figures[prefix + 'p50_ms'])} / {_ms(figures[prefix + 'p99_ms'])}"


REQUEST_COLUMNS = [
    "store",
    "clients",
    "mode",
    "direct p50/p99",
    "gateway p50/p99",
    "added p50/p99",
    "req/s direct",
    "req/s gateway",
    "gateway CPU ms/call",
    "stored/sent",
]
CHUNK_COLUMNS = [
    "store",
    "clients",
    "first direct",
    "first gateway",
    "first added",
    "gap direct",
    "gap gateway",
]
CHUNK_COLUMNS += ["gap added"]


def _request_cells(r: dict[str, Any]) -> list[str]:
    d, g = r["direct"], r["gateway"]
    return [
        r["store"],
        str(r["clients"]),
        r["mode"],
        _pair(d, ""),
        _pair(g, ""),
        _pair(r["added"], ""),
        f"{d['requests_per_s'] or 0:,.0f}",
        f"{g['requests_per_s'] or 0:,.0f}",
        f"{g['cpu_ms_per_call']['gateway']:.2f}",
        f"{r['stored']}/{r['sent']}",
    ]


def _chunk_cells(r: dict[str, Any]) -> list[str]:
    cells = [r["store"], str(r["clients"])]
    for key in ("first_chunk_", "chunk_gap_"):
        cells += [_pair(r[path], key) for path in ("direct", "gateway", "added")]
    return cells


def print_tables(rows: list[dict[str, Any]]) -> None:
    print("\nper request, ms (a whole stream for streamed calls); the gateway's CPU includes its sink's work")
    _table(REQUEST_COLUMNS, [_request_cells(r) for r in rows])
    streams = [r for r in rows if r["mode"] == "stream"]
    if streams:
        print(f"\nper streamed chunk ({STREAM_CHUNKS} a stream), ms: time to first chunk, gap between chunks")
        _table(CHUNK_COLUMNS, [_chunk_cells(r) for r in streams])


def print_targets(rows: list[dict[str, Any]]) -> None:
    print()
    print(
        f"targets: added p50 <= {TARGET_ADDED_P50_MS:g} ms and p99 <= {TARGET_ADDED_P99_MS:g} ms at "
        f"{TARGET_CLIENTS} clients, >= {TARGET_RPS:,.0f} non-streamed req/s through the gateway, 100% logged"
    )
    for store in dict.fromkeys(r["store"] for r in rows):
        mine = [r for r in rows if r["store"] == store]
        at = [r for r in mine if r["clients"] == TARGET_CLIENTS and r["mode"] == "plain"]
        if at:
            a = at[0]["added"]
            p50_ok = a["p50_ms"] is not None and a["p50_ms"] <= TARGET_ADDED_P50_MS
            p99_ok = a["p99_ms"] is not None and a["p99_ms"] <= TARGET_ADDED_P99_MS
            print(
                f"  {store}: added p50 {_ms(a['p50_ms'])} ms {'met' if p50_ok else 'NOT met'}, "
                f"p99 {_ms(a['p99_ms'])} ms {'met' if p99_ok else 'NOT met'}"
            )
        plain = [r["gateway"]["requests_per_s"] or 0.0 for r in mine if r["mode"] == "plain"]
        if plain:
            best = max(plain)
            print(f"  {store}: best gateway req/s {best:,.0f} {'met' if best >= TARGET_RPS else 'NOT met'}")
        sent = sum(r["sent"] for r in mine)
        stored = sum(r["stored"] for r in mine)
        print(f"  {store}: logged {stored:,}/{sent:,} {'met' if stored == sent else 'NOT met'}")


def print_profile(path: Path, top: int = 30) -> None:
    import pstats

    # cProfile wall-clock: a blocking call's time includes waiting for the GIL while the sink's thread holds it.
    for order in ("cumulative", "tottime"):
        print(f"\nprofile of the gateway's event-loop thread ({path}), top {top} by {order} time:")
        pstats.Stats(str(path), stream=sys.stdout).strip_dirs().sort_stats(order).print_stats(top)


# -- the run ----------------------------------------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _str_list(text: str) -> list[str]:
    values = [x.strip() for x in text.split(",") if x.strip()]
    unknown = set(values) - {"sqlite", "postgresql"}
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown store(s) {sorted(unknown)}: use sqlite and/or postgresql")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=_int_list, default=[1, 16, 128], help="concurrent clients per case")
    parser.add_argument("--requests", type=int, default=2000, help="measured non-streamed calls per case")
    parser.add_argument("--stream-requests", type=int, default=200, help="measured streamed calls per case")
    parser.add_argument("--stores", type=_str_list, default=["sqlite", "postgresql"])
    parser.add_argument(
        "--stream", action=argparse.BooleanOptionalAction, default=True, help="also run the streaming cases"
    )
    parser.add_argument(
        "--load",
        choices=["openai", "aiohttp"],
        default="openai",
        help="the load generator: the openai client (default), or a cheaper aiohttp one that leaves the machine "
        "to the gateway",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 and 4 clients, a few calls each")
    parser.add_argument("--pg-url", default="postgresql://postgres@localhost:5432/postgres")
    parser.add_argument("--store-timeout", type=float, default=60.0, help="seconds to wait for every record")
    parser.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the gateway's uvicorn access log (on, as under `flywheel serve` at log level INFO)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="run the gateway under cProfile; write DIR/gateway-<store>.pstats and print its top entries",
    )
    # Internal: how this script starts its own child servers.
    parser.add_argument("--serve", choices=["upstream", "gateway"], help=argparse.SUPPRESS)
    parser.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve:
        serve_child(args.serve, args.ready_file, args.profile, args.access_log)
        return
    if args.quick:
        args.clients, args.requests, args.stream_requests = [1, 4], 50, 5
    if any(c < 1 for c in args.clients) or args.requests < 1 or args.stream_requests < 1:
        parser.error("--clients, --requests and --stream-requests must be at least 1")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)

    run = secrets.token_hex(3)
    modes = [False, True] if args.stream else [False]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-gateway-") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        upstream = stack.enter_context(child_server("upstream", tmp, {}))
        for store in args.stores:
            profile = None if args.profile is None else args.profile / f"gateway-{store}.pstats"
            with database(store, tmp, args.pg_url) as url:
                env = {
                    "FLYWHEEL_HOME": str(tmp / f"home-{store}"),
                    "FLYWHEEL_DATABASE_URL": url,
                    "FLYWHEEL_API_KEYS": FLYWHEEL_KEY,
                    "FLYWHEEL_BENCH_UPSTREAM": upstream.url + "/v1",
                    UPSTREAM_KEY_ENV: UPSTREAM_KEY,
                }
                with child_server(
                    "gateway", tmp, env, profile=profile, access_log=args.access_log
                ) as gateway:
                    from flywheel.store import connect

                    engine = connect(url)
                    try:
                        for clients in args.clients:
                            for stream in modes:
                                rows.append(
                                    bench_case(args, run, store, clients, stream, upstream, gateway, engine)
                                )
                    finally:
                        engine.dispose()
                if profile is not None and profile.exists():
                    print_profile(profile)
    print_tables(rows)
    print_targets(rows)


def bench_case(
    args: argparse.Namespace,
    run: str,
    store: str,
    clients: int,
    stream: bool,
    upstream: Child,
    gateway: Child,
    engine: Any,
) -> dict[str, Any]:
    """One case: the load directly against the upstream, then through the gateway; then count what was stored.

    Besides latencies, each path reports the CPU milliseconds each process spent per call (warm-up calls
    included): unlike wall-clock figures, these hardly depend on what else the machine is doing. The gateway's
    CPU is counted until its records are stored, so its sink's work (ingestion) is in it.
    """
    mode = "stream" if stream else "plain"
    requests = max(args.stream_requests if stream else args.requests, clients)
    calls = requests + clients
    tag = f"{run}{store[0]}{clients}{mode[0]}"
    case = {
        "store": store,
        "clients": clients,
        "mode": mode,
        "load": args.load,
        "profiled": args.profile is not None,
    }

    def cpu() -> dict[str, float]:
        return {"client": time.process_time(), "upstream": upstream.cpu_s(), "gateway": gateway.cpu_s()}

    def cpu_ms_per_call(
        before: dict[str, float], after: dict[str, float], roles: list[str]
    ) -> dict[str, float]:
        return {role: round(1000.0 * (after[role] - before[role]) / calls, 3) for role in roles}

    before = cpu()
    load = asyncio.run(
        client_load(upstream.url + "/v1", UPSTREAM_KEY, clients, requests, stream, "d" + tag, args.load)
    )
    direct = summary(load) | {"cpu_ms_per_call": cpu_ms_per_call(before, cpu(), ["client", "upstream"])}
    emit({**case, "path": "direct", **direct})

    before = cpu()
    through = asyncio.run(
        client_load(gateway.url + "/v1", FLYWHEEL_KEY, clients, requests, stream, tag, args.load)
    )
    after_load = cpu()
    stored, waited = stored_questions(engine, tag, through.ok, args.store_timeout)
    used = cpu_ms_per_call(before, after_load, ["client", "upstream"])
    used |= cpu_ms_per_call(before, cpu(), ["gateway"])
    gateway_figures = summary(through) | {"cpu_ms_per_call": used}
    emit({**case, "path": "gateway", **gateway_figures})

    keys = ["p50_ms", "p99_ms"]
    if stream:
        keys += ["first_chunk_p50_ms", "first_chunk_p99_ms", "chunk_gap_p50_ms", "chunk_gap_p99_ms"]
    overhead = {key: added(direct, gateway_figures, key) for key in keys}
    row = {
        **case,
        "direct": direct,
        "gateway": gateway_figures,
        "added": overhead,
        "sent": len(through.ok),
        "stored": stored,
        "store_wait_s": round(waited, 2),
    }
    emit(
        {
            **case,
            "path": "added",
            **{f"added_{k}": v for k, v in overhead.items()},
            "requests_per_s_direct": direct["requests_per_s"],
            "requests_per_s_gateway": gateway_figures["requests_per_s"],
            "gateway_cpu_ms_per_call": used["gateway"],
            "sent": row["sent"],
            "stored": stored,
            "store_wait_s": row["store_wait_s"],
        }
    )
    return row


if __name__ == "__main__":
    main()
