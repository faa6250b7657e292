"""``benchmarks/curate.py --input``: any exported log file can be benchmarked, whatever its workload is called."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from factories import chat_record

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "curate.py"


def test_the_workload_curated_is_the_one_in_the_input_file(tmp_path: Path) -> None:
    log = tmp_path / "exported.jsonl"
    records = [
        chat_record(
            f"headline {i}", ["sports", "business", "tech"][i % 3], workload_id="news", client_id="app"
        )
        for i in range(120)
    ]
    log.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))

    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--input", str(log), "--eval-size", "20"],
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert run.returncode == 0, run.stderr
    assert "curating workload 'news', client 'app'" in run.stdout
    curate = next(line for line in run.stdout.splitlines() if line.strip().startswith("curate:"))
    assert "120 records" in curate
