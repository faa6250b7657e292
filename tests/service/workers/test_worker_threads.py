"""A Celery worker never gives its tasks more CPU threads than it has: its processes split the budget."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from flywheel.config import Settings
from flywheel.service.workers import _celery


class _FakeApp:
    """Why: records the worker's command line instead of starting Celery (no broker needed to check the plan)."""

    def __init__(self) -> None:
        self.argv: list[str] = []

    def worker_main(self, argv: list[str]) -> None:
        self.argv = argv

    def send_task(
        self, *args: Any, **kwargs: Any
    ) -> None:  # pragma: no cover - the recovery loop finds nothing
        pass


def _start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], **kwargs: Any
) -> tuple[int, Any]:
    built: list[Settings] = []
    app = _FakeApp()

    def make_celery(settings: Settings, **_: Any) -> _FakeApp:
        built.append(settings)
        return app

    monkeypatch.setattr(_celery, "make_celery", make_celery)
    monkeypatch.setattr(_celery, "accelerator_count", lambda: 0)
    settings = Settings.load(env={"FLYWHEEL_HOME": str(tmp_path), **env})
    _celery.run_worker(settings, queues=["flywheel", "accelerator"], **kwargs)
    concurrency = int(next(a for a in app.argv if a.startswith("--concurrency=")).split("=", 1)[1])
    return concurrency, built[-1]


@pytest.mark.parametrize("concurrency", [None, 1, 2])
def test_cpu_worker_concurrency_times_threads_per_task_fits_the_cores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, concurrency: int | None
) -> None:
    cores = len(os.sched_getaffinity(0))
    if concurrency is not None and concurrency > cores:
        pytest.skip("needs as many cores as worker processes")
    processes, settings = _start(tmp_path, monkeypatch, {}, concurrency=concurrency)
    threads = int(settings.env["FLYWHEEL_CPU_THREADS"])  # what every task's local backends are built with
    assert settings.cpu_threads == threads
    assert processes * threads <= cores
    if concurrency is None:
        assert (processes, threads) == (1, cores)  # the default: one process on every core


def test_cpu_worker_splits_an_explicit_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    processes, settings = _start(tmp_path, monkeypatch, {"FLYWHEEL_CPU_THREADS": "6"}, concurrency=3)
    assert processes == 3 and settings.env["FLYWHEEL_CPU_THREADS"] == "2"
    processes, settings = _start(
        tmp_path, monkeypatch, {"FLYWHEEL_CPU_THREADS": "6"}, concurrency=3, pool="threads"
    )
    assert (
        processes == 3 and settings.env["FLYWHEEL_CPU_THREADS"] == "6"
    )  # one process: its steps share the 6
