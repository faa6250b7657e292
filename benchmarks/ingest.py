"""Ingestion throughput: N realistic log records through the CLI path into SQLite and PostgreSQL.

Prints records/s and peak RSS of the ingesting process for each store. Targets on a 2-core machine:
≥ 25,000 records/s into each store, peak RSS < 400 MB.

    .venv/bin/python benchmarks/ingest.py              # 1,000,000 records
    .venv/bin/python benchmarks/ingest.py --n 100000   # quicker
    .venv/bin/python benchmarks/ingest.py --skip-postgres

PostgreSQL: a throw-away database is created and dropped on the server at --pg-url (default: local server).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

WORKLOADS = ["news_classifier", "support_router", "tool_router", "summarizer", "qa_bot"]
CLIENTS = ["web", "mobile", "batch"]
WORDS = [
    "market",
    "shares",
    "rose",
    "after",
    "the",
    "company",
    "reported",
    "quarterly",
    "earnings",
    "above",
    "expectations",
    "while",
    "analysts",
    "warned",
    "that",
    "inflation",
    "and",
    "interest",
    "rates",
    "could",
    "weigh",
    "on",
    "consumer",
    "demand",
    "in",
    "the",
    "coming",
    "months",
    "government",
    "officials",
    "said",
    "the",
    "new",
    "policy",
    "would",
    "support",
    "small",
    "businesses",
    "and",
    "improve",
    "access",
    "to",
    "credit",
    "across",
    "several",
    "regions",
]
TOPICS = ["business", "entertainment", "politics", "sport", "tech"]


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def make_record(i: int, rng: random.Random) -> dict[str, object]:
    """One ~1 KB log record in the blueprint schema (classification, tool-calling or free text)."""
    workload = WORKLOADS[i % len(WORKLOADS)]
    ts = 1_760_000_000 + i
    messages: list[dict[str, object]] = [
        {"role": "system", "content": f"You are the {workload} assistant. Answer briefly and precisely."},
        {"role": "user", "content": _sentence(rng, rng.randint(60, 100))},
    ]
    request: dict[str, object] = {
        "model": "meta/llama-3.3-70b-instruct",
        "messages": messages,
        "temperature": 0.0,
    }
    message: dict[str, object]
    if workload == "tool_router":
        request["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": "lookup_order",
                    "description": "Look up an order by id.",
                    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
                },
            }
        ]
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{i}",
                    "type": "function",
                    "function": {"name": "lookup_order", "arguments": json.dumps({"order_id": str(i)})},
                }
            ],
        }
    elif workload == "news_classifier":
        message = {"role": "assistant", "content": f"[[[{rng.choice(TOPICS)}]]]"}
    else:
        message = {"role": "assistant", "content": _sentence(rng, 25)}
    return {
        "timestamp": ts,
        "workload_id": workload,
        "client_id": CLIENTS[i % len(CLIENTS)],
        "request": request,
        "response": {
            "id": f"chatcmpl-{i}",
            "object": "chat.completion",
            "created": ts,
            "model": "meta/llama-3.3-70b-instruct",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 12, "total_tokens": 132},
        },
    }


def write_records(path: Path, n: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    size = 0
    with path.open("wb") as fh:
        for i in range(n):
            line = orjson.dumps(make_record(i, rng)) + b"\n"
            size += len(line)
            fh.write(line)
    return size


def run_cli_ingest(path: Path, database_url: str, home: Path) -> tuple[dict[str, object], float, float]:
    """Run `flywheel ingest PATH --json` in a child process; returns (report, wall seconds, peak RSS MB)."""
    env = {**os.environ, "FLYWHEEL_DATABASE_URL": database_url, "FLYWHEEL_HOME": str(home)}
    cmd = [sys.executable, "-m", "flywheel", "ingest", str(path), "--json"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    # os.wait4 cannot be used after communicate(); the rusage of finished children is still available.
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"ingest failed ({proc.returncode}): {err.decode()}")
    import resource

    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return json.loads(out), wall, peak_kb / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000, help="records to generate")
    parser.add_argument("--pg-url", default="postgresql://postgres@localhost:5432/postgres")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="flywheel-bench-") as tmp:
        tmpdir = Path(tmp)
        data = tmpdir / "logs.jsonl"
        t0 = time.perf_counter()
        size = write_records(data, args.n)
        print(
            f"generated {args.n:,} records, {size / args.n:.0f} B/record, in {time.perf_counter() - t0:.1f} s"
        )

        results = []
        if not args.skip_sqlite:
            url = f"sqlite:///{tmpdir / 'bench.db'}"
            report, wall, rss = run_cli_ingest(data, url, tmpdir)
            results.append(("sqlite", report, wall, rss))
        if not args.skip_postgres:
            from sqlalchemy import create_engine, text
            from sqlalchemy.engine import make_url

            admin_url = make_url(args.pg_url).set(drivername="postgresql+psycopg")
            name = f"flywheel_bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                url = admin_url.set(database=name).render_as_string(hide_password=False)
                report, wall, rss = run_cli_ingest(data, url, tmpdir)
                results.append(("postgresql", report, wall, rss))
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()

        # Peak RSS: RUSAGE_CHILDREN is the maximum over finished children, so report it cumulatively.
        print(f"{'store':<12}{'records':>12}{'wall s':>10}{'records/s':>12}{'peak RSS MB':>14}")
        for store, report, wall, rss in results:
            accepted = int(report["accepted"])  # type: ignore[call-overload]
            print(f"{store:<12}{accepted:>12,}{wall:>10.1f}{accepted / wall:>12,.0f}{rss:>14.0f}")
        print("target: >= 25,000 records/s per store, peak RSS < 400 MB")


if __name__ == "__main__":
    main()
