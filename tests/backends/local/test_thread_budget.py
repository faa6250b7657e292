"""The local engine's CPU thread budget: FLYWHEEL_CPU_THREADS, each engine step on its share of the cores, and
concurrent steps in one process never using more threads than the budget together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from flywheel.config import Settings
from flywheel.errors import ConfigError


@pytest.fixture
def torch_threads() -> Iterator[None]:
    """Why: the tests change torch's thread count of the test thread; later tests must find it as it was."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def own_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Why: engine steps register machine-wide (other flywheel processes on this machine, e.g. another test run,
    would change the shares); the engine tests get their own registry folder and a fresh process budget."""
    from flywheel.backends.local import _threads

    folder = tmp_path / "steps"
    monkeypatch.setattr(_threads, "machine_steps_dir", lambda: folder)
    monkeypatch.setattr(_threads, "_budget", None)
    yield folder


def _in_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a fresh thread (torch's thread count is per thread on OpenMP builds) and return its result."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(120)
    if "error" in box:
        raise box["error"]
    return box["value"]


# ------------------------------------------------------------------------------------------------ the setting


@pytest.mark.parametrize(("value", "expected"), [("3", 3), (" 1 ", 1), ("", None), (None, None)])
def test_cpu_threads_env_var_is_a_positive_integer_or_unset(value: str | None, expected: int | None) -> None:
    from flywheel.backends.local._threads import cpu_threads_from_env

    env = {} if value is None else {"FLYWHEEL_CPU_THREADS": value}
    assert cpu_threads_from_env(env) == expected
    assert Settings.load(env={**env, "FLYWHEEL_HOME": "/tmp/unused"}).cpu_threads == expected


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_invalid_cpu_threads_is_a_config_error_naming_the_variable_and_the_fix(value: str) -> None:
    from flywheel.backends.local._threads import cpu_threads_from_env

    with pytest.raises(ConfigError, match="FLYWHEEL_CPU_THREADS") as raised:
        Settings.load(env={"FLYWHEEL_CPU_THREADS": value})
    assert "positive" in str(raised.value) and "unset it" in str(raised.value)
    assert raised.value.problems[0][0] == "FLYWHEEL_CPU_THREADS"
    with pytest.raises(ConfigError, match="FLYWHEEL_CPU_THREADS"):
        cpu_threads_from_env({"FLYWHEEL_CPU_THREADS": value})


def test_the_default_budget_is_the_cores_this_process_may_use() -> None:
    from flywheel.backends.local._threads import thread_budget_size

    assert thread_budget_size(None) == len(os.sched_getaffinity(0))
    assert thread_budget_size(3) == 3


def test_local_factories_pass_the_budget_from_the_environment() -> None:
    from flywheel.backends.local._factories import inference
    from flywheel.config._models import NIMConfig

    backend: Any = inference(
        NIMConfig(model_name="smollm2-135m-instruct"),
        adapter_dir=None,
        cache_dir=None,
        env={"FLYWHEEL_CPU_THREADS": "3"},
    )
    assert backend.cpu_threads == 3
    with pytest.raises(ConfigError, match="FLYWHEEL_CPU_THREADS"):
        inference(
            NIMConfig(model_name="smollm2-135m-instruct"),
            adapter_dir=None,
            cache_dir=None,
            env={"FLYWHEEL_CPU_THREADS": "all"},
        )


# ------------------------------------------------------------------------------------------------ leases


def test_a_step_runs_on_its_share_and_sets_torch_back_afterwards(torch_threads: None) -> None:
    from flywheel.backends.local._threads import ThreadBudget

    def step() -> tuple[int, int, int]:
        torch.set_num_threads(2)
        with ThreadBudget(3).lease() as lease:
            inside = torch.get_num_threads()
            assert lease.threads == inside
        return 2, inside, torch.get_num_threads()

    before, inside, after = _in_thread(step)
    assert inside == 3
    assert after == before


def test_concurrent_steps_in_one_process_never_exceed_the_budget_together() -> None:
    from flywheel.backends.local._threads import ThreadBudget

    budget = ThreadBudget(2)
    lock = threading.Lock()
    seen: list[int] = []  # threads in use, summed over the steps, at every checkpoint
    mismatches: list[tuple[int, int]] = []  # torch's count of a step's thread vs the step's share
    shares: list[int] = []
    both_in = threading.Barrier(2, timeout=30)

    def step(checkpoints: int) -> None:
        with budget.lease() as lease:
            for i in range(checkpoints):
                lease.rebalance()
                with lock:
                    seen.append(budget.in_use)
                    shares.append(lease.threads)
                    if torch.get_num_threads() != lease.threads:
                        mismatches.append((torch.get_num_threads(), lease.threads))
                if i == 5:
                    both_in.wait()  # both steps are running now (each past its lease)
                torch.ones(64, 64) @ torch.ones(64, 64)

    threads = [threading.Thread(target=step, args=(400,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert seen and max(seen) <= 2
    assert not mismatches
    assert 1 in shares  # the steps did share: each ran on one of the two threads at some point
    assert budget.in_use == 0


def test_steps_beyond_the_budget_wait_for_a_thread() -> None:
    from flywheel.backends.local._threads import ThreadBudget

    budget = ThreadBudget(2)
    running = 0
    most = 0
    finished = 0
    lock = threading.Lock()
    two_ran = threading.Event()

    def step() -> None:
        nonlocal running, most, finished
        with budget.lease() as lease:
            with lock:
                running += 1
                most = max(most, running)
                if running == 2:
                    two_ran.set()
            for _ in range(200):  # checkpoints, until two steps have run side by side
                lease.rebalance()
                if two_ran.wait(0.01):
                    break
            with lock:
                running -= 1
                finished += 1

    threads = [threading.Thread(target=step) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert most == 2  # two at a time on two threads, never three
    assert finished == 3  # the third ran once a thread came free
    assert budget.in_use == 0


def test_steps_of_other_processes_on_the_machine_shrink_this_process_share(tmp_path: Path) -> None:
    """Another process's step (here: a process holding a registered step, as `flywheel serve` beside `flywheel run`)
    halves this process's share of a 2-core machine; when that process dies, the share grows back."""
    from flywheel.backends.local._threads import MachineSteps, ThreadBudget

    folder = tmp_path / "steps"
    other = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from flywheel.backends.local._threads import MachineSteps; "
            "r = MachineSteps(Path(sys.argv[1])).register(); print('registered', r is not None, flush=True); "
            "sys.stdin.read()",
            str(folder),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "registered True"
        budget = ThreadBudget(2, MachineSteps(folder), cores=2)

        def step() -> tuple[int, int]:
            with budget.lease() as lease:
                beside = lease.threads
                other.send_signal(signal.SIGKILL)  # dies without unregistering: its lock goes with it
                other.wait(30)
                return beside, lease.rebalance()

        beside, alone = _in_thread(step)
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()
    assert beside == 1
    assert alone == 2
    assert not list(folder.glob("*.step"))  # the dead process's file was removed, and this step's own


def test_the_celery_worker_split_keeps_concurrency_times_threads_within_the_cores() -> None:
    from flywheel.service.workers._celery import worker_cpu_plan

    queues = ["flywheel", "accelerator"]
    for cores in (1, 2, 3, 8):
        default = worker_cpu_plan(queues, None, None, gpus=0, cpu_threads=cores)
        assert default == (1, cores)  # no GPU: one process on every core
        for concurrency in range(1, cores + 1):
            processes, threads = worker_cpu_plan(queues, concurrency, "prefork", gpus=0, cpu_threads=cores)
            assert processes == concurrency and processes * threads <= cores
        processes, threads = worker_cpu_plan(queues, None, None, gpus=2, cpu_threads=cores)
        assert processes == 2 and (cores < 2 or processes * threads <= cores)
    assert worker_cpu_plan(queues, 2, "threads", gpus=0, cpu_threads=4) == (
        2,
        4,
    )  # one process shares its budget
    assert worker_cpu_plan(queues, 4, "solo", gpus=0, cpu_threads=4) == (1, 4)


# ------------------------------------------------------------------------------------------------ the engine


@pytest.mark.slow
def test_generate_and_train_run_on_the_budget_and_set_torch_back(
    model_cache: Path, torch_threads: None, own_machine: Path
) -> None:
    from flywheel.backends import ChatRequest
    from flywheel.backends.local import LocalInferenceBackend, LocalTrainingBackend, TrainingParams

    def run() -> dict[str, Any]:
        torch.set_num_threads(2)
        backend = LocalInferenceBackend(cache_dir=model_cache, dtype="float32", cpu_threads=1)
        model = backend.load().model
        inside: list[int] = []
        original = model.forward

        def spy(*args: Any, **kwargs: Any) -> Any:
            inside.append(torch.get_num_threads())
            return original(*args, **kwargs)

        model.forward = spy
        try:
            backend.generate([ChatRequest(messages=[{"role": "user", "content": "Hi"}], max_tokens=2)])
        finally:
            del model.forward
            backend.close()
        after_generate = torch.get_num_threads()
        training: list[int] = []
        trainer = LocalTrainingBackend(
            cache_dir=model_cache, training=TrainingParams(epochs=1, batch_size=2, max_steps=1), cpu_threads=1
        )
        example = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
        trainer.train(
            [example, example],
            [],
            Path(model_cache) / "thread-budget-adapter",
            on_progress=lambda _: training.append(torch.get_num_threads()),
        )
        return {
            "generate": inside,
            "after_generate": after_generate,
            "train": training,
            "after": torch.get_num_threads(),
        }

    seen = _in_thread(run)
    assert seen["generate"] and set(seen["generate"]) == {1}
    assert seen["after_generate"] == 2
    assert seen["train"] == [1]
    assert seen["after"] == 2


@pytest.mark.slow
def test_concurrent_evaluations_in_one_process_share_the_cores(model_cache: Path, own_machine: Path) -> None:
    """Two evaluations at once in one process (the in-process executor with max_concurrent_jobs: 2), each on a
    backend built as the job runner builds it: the threads computing at any moment sum to at most the cores."""
    from flywheel.backends import ChatRequest
    from flywheel.backends.local import LocalInferenceBackend

    cores = len(os.sched_getaffinity(0))
    backends = [
        LocalInferenceBackend(cache_dir=model_cache, dtype="float32", max_batch_size=1) for _ in range(2)
    ]
    model = backends[0].load().model
    assert backends[1].load().model is model  # one cached model, as in a job process
    lock = threading.Lock()
    computing: dict[int, int] = {}
    totals: list[int] = []
    overlapped: list[bool] = []
    original = model.forward

    def spy(*args: Any, **kwargs: Any) -> Any:
        with lock:
            computing[threading.get_ident()] = torch.get_num_threads()
            totals.append(sum(computing.values()))
            overlapped.append(len(computing) > 1)
        try:
            return original(*args, **kwargs)
        finally:
            with lock:
                computing.pop(threading.get_ident(), None)

    requests = [
        ChatRequest(messages=[{"role": "user", "content": f"Name a colour, number {i}."}], max_tokens=3)
        for i in range(12)
    ]
    model.forward = spy
    try:
        threads = [threading.Thread(target=backend.generate, args=(requests,)) for backend in backends]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
    finally:
        del model.forward
        for backend in backends:
            backend.close()
    assert totals and max(totals) <= cores
    assert any(overlapped) or cores == 1  # the two evaluations did run at the same time
