"""``benchmarks/gateway.py --quick`` runs end to end (the figures are the benchmark's business, not a test's): both
paths answer every call and every call through the gateway is stored."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "gateway.py"


def test_the_gateway_benchmark_runs_and_every_call_is_logged(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--stores", "sqlite"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )

    assert run.returncode == 0, run.stderr[-3000:]
    figures = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    paths = [f for f in figures if f.get("path") in ("direct", "gateway")]
    added = [f for f in figures if f.get("path") == "added"]
    assert paths and all(f["errors"] == 0 for f in paths)
    assert added and all(f["stored"] == f["sent"] > 0 for f in added)
