"""Curation benchmark: ingest, then time selection → validation → dedup → split → dataset files written.

    python benchmarks/curate.py [--input FILE.jsonl [--workload-id W --client-id C]] [--n N]
                                [--kind classification|tool_calling] [--with-icl]

Without ``--input`` it generates ``N`` (default 1,000,000) records of one workload: ~10% repeated user contents
(with case/whitespace variations), ~1% invalid records, a skewed (Zipf) class distribution; tool-calling records carry
2–5 tool schemas and string-encoded arguments. Ingest and curate each run in their own child process so that wall
time, CPU time, records/s and peak RSS are reported separately for each. With ``--input`` (any exported log file),
the workload and client curated are the most common pair among the file's first 10,000 records unless
``--workload-id`` / ``--client-id`` name them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

WORKLOAD, CLIENT = "bench-workload", "bench-client"
WORDS = [
    "market",
    "shares",
    "profit",
    "rise",
    "fall",
    "government",
    "election",
    "team",
    "match",
    "goal",
    "player",
    "film",
    "music",
    "award",
    "star",
    "phone",
    "software",
    "chip",
    "internet",
    "bank",
    "rate",
    "growth",
    "deal",
    "court",
    "minister",
    "city",
    "weather",
    "travel",
    "price",
    "report",
]


def _zipf_weights(n: int, s: float = 1.2) -> list[float]:
    return [1.0 / (k**s) for k in range(1, n + 1)]


def _tool_schema(name: str, rng: random.Random) -> dict[str, Any]:
    props = {
        f"arg_{i}": {"type": rng.choice(["string", "integer", "number"]), "description": f"argument {i}"}
        for i in range(rng.randint(1, 6))
    }
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"The {name} function.",
            "parameters": {"type": "object", "properties": props, "required": list(props)[:1]},
        },
    }


def generate(path: Path, n: int, kind: str, seed: int = 0) -> None:
    """Write ``n`` synthetic log records of one workload to ``path``."""
    rng = random.Random(seed)
    classes = (
        [f"class_{i:02d}" for i in range(20)]
        if kind == "classification"
        else [f"fn_{i:03d}" for i in range(60)]
    )
    weights = _zipf_weights(len(classes))
    schemas = {name: _tool_schema(name, rng) for name in classes}
    picks = rng.choices(classes, weights=weights, k=n)
    recent: list[str] = []
    with open(path, "wb") as fh:
        for i in range(n):
            label = picks[i]
            if recent and rng.random() < 0.10:  # ~10% repeat an earlier user text, sometimes re-cased/spaced
                user = rng.choice(recent)
                if rng.random() < 0.5:
                    user = "  " + user.upper() + " "
            else:
                user = f"{label} request {i}: " + " ".join(rng.choices(WORDS, k=rng.randint(6, 18)))
                if len(recent) < 50_000:
                    recent.append(user)
            messages: list[dict[str, Any]] = [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": user},
            ]
            request: dict[str, Any] = {"model": "meta/llama-3.3-70b-instruct", "messages": messages}
            if kind == "classification":
                message: dict[str, Any] = {"role": "assistant", "content": f"[[[{label}]]]"}
            else:
                others = rng.sample(classes, rng.randint(1, 4))
                request["tools"] = [schemas[label]] + [schemas[o] for o in others if o != label]
                args = {k: rng.randint(0, 99) for k in schemas[label]["function"]["parameters"]["properties"]}
                message = {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": f"call_{i}",
                            "type": "function",
                            "function": {"name": label, "arguments": json.dumps(args)},
                        }
                    ],
                }
            if rng.random() < 0.01:  # ~1% invalid in ways only curation catches
                broken = rng.randrange(3)
                if broken == 0:
                    messages[1]["role"] = "human"
                elif broken == 1:
                    messages[1]["content"] = 12345
                elif kind == "tool_calling":
                    message["tool_calls"][0]["function"]["arguments"] = "{not json"
                else:
                    message["content"] = 3.14
            record = {
                "timestamp": 1_700_000_000 + i,
                "workload_id": WORKLOAD,
                "client_id": CLIENT,
                "request": request,
                "response": {
                    "id": f"r{i}",
                    "object": "chat.completion",
                    "model": request["model"],
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35},
                },
            }
            fh.write(orjson.dumps(record) + b"\n")


def _usage() -> dict[str, float]:
    """CPU seconds of this process and its worker processes; peak RSS of the largest of them (MB)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "cpu_s": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
        "peak_rss_mb": max(me.ru_maxrss, kids.ru_maxrss) / 1024,
    }


def stage_ingest(db_url: str, input_path: str) -> dict[str, Any]:
    from flywheel.pipeline.ingest import ingest_file
    from flywheel.store import open_store

    engine = open_store(db_url)
    t0, c0 = time.perf_counter(), _usage()["cpu_s"]
    report = ingest_file(engine, input_path)
    wall = time.perf_counter() - t0
    usage = _usage()
    return {
        "stage": "ingest",
        "records": report.accepted,
        "quarantined": report.quarantined,
        "duplicates": report.duplicates,
        "wall_s": wall,
        "cpu_s": usage["cpu_s"] - c0,
        "peak_rss_mb": usage["peak_rss_mb"],
    }


def workload_of(path: str | Path, sample: int = 10_000) -> tuple[str, str]:
    """The most common (workload_id, client_id) among the first ``sample`` readable records of a JSONL file."""
    pairs: Counter[tuple[str, str]] = Counter()
    with open(path, "rb") as fh:
        for line in itertools.islice(fh, sample):
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, dict):
                workload, client = record.get("workload_id"), record.get("client_id")
                if isinstance(workload, str) and isinstance(client, str):
                    pairs[(workload, client)] += 1
    if not pairs:
        raise SystemExit(
            f"{path}: no record with a workload_id and a client_id in its first {sample:,} lines"
        )
    return pairs.most_common(1)[0][0]


def stage_curate(
    db_url: str,
    out_dir: str,
    with_icl: bool,
    workers: int | None = None,
    workload: tuple[str, str] = (WORKLOAD, CLIENT),
    eval_size: int = 1000,
) -> dict[str, Any]:
    from flywheel.config import FlywheelConfig
    from flywheel.pipeline.datasets import build_datasets, resolve_data_settings
    from flywheel.store import connect

    engine = connect(db_url)
    config = FlywheelConfig.model_validate(
        {"data_split_config": {"eval_size": eval_size, "limit": None, "random_seed": 1}}
    )
    data = resolve_data_settings(config)
    t0, c0 = time.perf_counter(), _usage()["cpu_s"]
    build = build_datasets(
        engine,
        *workload,
        out_dir=Path(out_dir),
        split=data.split,
        icl=data.icl,
        evaluation=data.evaluation,
        curation=data.curation,
        with_icl=with_icl,
        workers=workers,
    )
    wall = time.perf_counter() - t0
    usage = _usage()
    m = build.manifest
    return {
        "stage": "curate",
        "records": m["total"],
        "wall_s": wall,
        "cpu_s": usage["cpu_s"] - c0,
        "peak_rss_mb": usage["peak_rss_mb"],
        "workload_type": m["workload_type"],
        "rejected": sum(m["rejected"].values()),
        "deduplicated": m["deduplicated"],
        "selected": m["selected"],
        "eval": m["eval"]["count"],
        "train": m["train"]["count"],
        "val": m["val"]["count"],
        "train_classes": len(m["train"]["classes"]),
        "timings_s": m["timings_s"],
        "processes": m["processes"],
    }


def _child(args: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"the {args[1]} stage failed:\n{out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _print(result: dict[str, Any]) -> None:
    rate = result["records"] / result["wall_s"] if result["wall_s"] else 0.0
    print(
        f"{result['stage']:>7}: {result['records']:>9,} records  wall {result['wall_s']:7.2f} s  "
        f"cpu {result['cpu_s']:7.2f} s  {rate:>10,.0f} records/s  peak RSS {result['peak_rss_mb']:7.0f} MB"
    )
    extra = {
        k: v for k, v in result.items() if k not in ("stage", "records", "wall_s", "cpu_s", "peak_rss_mb")
    }
    if extra:
        print(f"         {json.dumps(extra)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--input", help="JSONL log file (default: generate one workload)")
    parser.add_argument("--workload-id", help="workload to curate (default: the input's most common)")
    parser.add_argument("--client-id", help="client to curate (default: the input's most common)")
    parser.add_argument("--n", type=int, default=1_000_000, help="records to generate")
    parser.add_argument("--kind", choices=["classification", "tool_calling"], default="classification")
    parser.add_argument("--eval-size", type=int, default=1000, help="records in the eval set (default: 1000)")
    parser.add_argument("--with-icl", action="store_true", help="also build the ICL eval file (uniform)")
    parser.add_argument("--workers", type=int, help="curation processes (default: automatic)")
    parser.add_argument("--workdir", help="keep the database and files here (default: a temporary directory)")
    parser.add_argument("--stage", choices=["ingest", "curate"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.stage == "ingest":
        print(json.dumps(stage_ingest(args.db, args.input)))
        return
    if args.stage == "curate":
        workload = (args.workload_id or WORKLOAD, args.client_id or CLIENT)
        result = stage_curate(args.db, args.out, args.with_icl, args.workers, workload, args.eval_size)
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        input_path = args.input
        if input_path is None:
            input_path = str(work / f"{args.kind}.jsonl")
            t0 = time.perf_counter()
            generate(Path(input_path), args.n, args.kind)
            size = os.path.getsize(input_path) / 1e6
            print(
                f"generated {args.n:,} {args.kind} records ({size:,.0f} MB) in {time.perf_counter() - t0:.1f} s"
            )
        if args.input is None:
            workload = (WORKLOAD, CLIENT)
        else:
            found = workload_of(input_path) if not (args.workload_id and args.client_id) else ("", "")
            workload = (args.workload_id or found[0], args.client_id or found[1])
            print(f"curating workload {workload[0]!r}, client {workload[1]!r}")
        db = f"sqlite:///{work / 'bench.db'}"
        _print(_child(["--stage", "ingest", "--db", db, "--input", input_path]))
        curate_args = ["--stage", "curate", "--db", db, "--out", str(work / "datasets")]
        curate_args += [
            "--workload-id",
            workload[0],
            "--client-id",
            workload[1],
            "--eval-size",
            str(args.eval_size),
        ]
        curate_args += ["--with-icl"] if args.with_icl else []
        curate_args += ["--workers", str(args.workers)] if args.workers else []
        _print(_child(curate_args))


if __name__ == "__main__":
    main()
