"""The local engine's CPU thread budget: engine steps that run at the same time in one process share its cores.

torch runs every operation on ``torch.get_num_threads()`` threads, and by default each process takes every core.
Two steps at that default on the same cores oversubscribe them, and throughput collapses (measured on 2 cores: three
engine processes at the default took 133 s for what took 28–31 s at one thread each).

The budget of a process is ``FLYWHEEL_CPU_THREADS``, or every core the process may run on
(``os.sched_getaffinity``). Each engine step (a ``generate`` call, a training run, an embedding call) runs under a
:class:`ThreadLease` from the process's :class:`ThreadBudget`:

* a step gets a fair share of the budget: ``budget // steps`` (the first steps get the remainder), at least one
  thread; while as many steps as the budget has threads are running, the next one waits for a thread to come free;
* a step sets torch's thread count to its share on entry and sets back what it found on exit;
* shares change only at a step's checkpoints (between generation batches, between optimizer steps), where the step
  calls :meth:`ThreadLease.rebalance`: it gives threads back when others now wait, and takes free ones when others
  left. A thread is handed to a newcomer only after its holder gave it back, so the threads in use never sum past
  the budget; a newcomer waits at most one batch or optimizer step of the running step.

Why per-step shares work in one process: torch's thread count is not one process-wide number on its OpenMP builds
(the Linux wheels). ``torch.set_num_threads`` sets the calling thread's OpenMP (and MKL) thread count, and the global
default that new threads start from; a thread that has already run torch code keeps its own count. So two job
threads can run at one thread each, and each step must set its count in the thread that runs it (which the lease
does). On a torch built without OpenMP the count is one process-wide number: the lease still never lets the shares
sum past the budget, but then the last share set wins for every running step.

Processes on one machine (``flywheel run`` beside ``flywheel serve``, several workers) share its cores too: every
engine step holds a locked file in :func:`machine_steps_dir` while it runs or waits, and at each checkpoint a
process may use at most its part of the cores in proportion to its steps among all the live ones (and never more
than its own budget). The lock of a process that dies is released with it, so a crash leaves no phantom step.
Processes learn of each other only at checkpoints, so a newcomer may run beside a step that has not yet shrunk for
up to one batch or optimizer step, and each process keeps at least one thread, so more busy processes than cores
still oversubscribe them. A Celery worker divides its budget among its processes up front (see
:mod:`flywheel.service.workers._celery`).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from flywheel.config._settings import parse_cpu_threads

log = logging.getLogger(__name__)


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, e.g. a container's or ``taskset``'s cores)."""
    # macOS and Windows have no sched_getaffinity: every core.
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover
        return max(1, os.cpu_count() or 1)


def cpu_threads_from_env(env: Mapping[str, str]) -> int | None:
    """``FLYWHEEL_CPU_THREADS`` from ``env`` (None when unset); :class:`~flywheel.errors.ConfigError` when invalid."""
    return parse_cpu_threads(env.get("FLYWHEEL_CPU_THREADS"))


def thread_budget_size(threads: int | None = None) -> int:
    """The threads of the budget: ``threads`` when given, else :func:`available_cores`."""
    return threads if threads is not None and threads > 0 else available_cores()


def _set_torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def machine_steps_dir() -> Path:
    """Where this user's flywheel processes register their running engine steps (one folder per machine)."""
    return Path(tempfile.gettempdir()) / f"flywheel-cpu-steps-{os.getuid()}"


class MachineSteps:
    """Engine steps running or waiting on this machine, across processes: one exclusively locked file per step."""

    _ids = itertools.count()

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def register(self) -> tuple[int, Path] | None:
        """Register a step: its locked file's descriptor and path (None when the folder is unusable; the step then
        runs on this process's budget alone)."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no registry, each process on its own budget
            return None
        path = self.directory / f"{os.getpid()}-{next(self._ids)}.step"
        staging = path.with_name(f".{path.name}")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(staging, os.O_CREAT | os.O_RDWR, 0o600)
        except OSError as exc:
            log.debug("cannot register an engine step under %s: %s", self.directory, exc)
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Locked before it becomes visible: a counter never takes it for a dead step and removes it.
            os.rename(staging, path)
        except OSError as exc:
            os.close(fd)
            log.debug("cannot register an engine step under %s: %s", self.directory, exc)
            return None
        return fd, path

    def unregister(self, registration: tuple[int, Path] | None) -> None:
        if registration is None:
            return
        fd, path = registration
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)

    def count(self) -> int:
        """Steps whose process is alive (files whose lock is held); removes those of processes that died."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return 0
        live = 0
        try:
            # Not the ".NAME" files being registered: they are not locked yet.
            entries = [e for e in os.scandir(self.directory) if e.name.endswith(".step") and e.name[0] != "."]
        except OSError:
            return 0
        for entry in entries:
            try:
                fd = os.open(entry.path, os.O_RDONLY)
            except OSError:
                continue  # removed meanwhile: its step ended
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                live += 1
            except OSError:
                pass
            else:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)  # nobody holds it: its process died
            finally:
                os.close(fd)
        return live


class ThreadLease:
    """One engine step's share of a :class:`ThreadBudget`; ``threads`` is what the step runs on now."""

    def __init__(self, budget: ThreadBudget) -> None:
        self.budget = budget
        self.threads = 0
        self.previous = 0

    def rebalance(self) -> int:
        """At a checkpoint of the step: give back threads others wait for, take free ones others left; returns the
        step's thread count, which torch now runs this thread on."""
        return self.budget._rebalance(self)


class _NoLease(ThreadLease):
    """A step that does not run on the CPU (a GPU step): it takes no threads and never waits."""

    def rebalance(self) -> int:
        return self.threads


class ThreadBudget:
    """The CPU threads engine steps in this process may use together (see the module docstring)."""

    def __init__(self, total: int, machine: MachineSteps | None = None, cores: int | None = None) -> None:
        self.total = max(1, total)
        # With `machine`, the process shares the machine's `cores` with other processes' steps.
        self.machine = machine
        self.cores = cores or available_cores()
        self._cond = threading.Condition()
        # In arrival order: the earliest get the remainder of the division.
        self._running: list[ThreadLease] = []
        self._waiting: list[ThreadLease] = []  # first come, first served

    # ---------------------------------------------------------------------------------------------- accounting

    @property
    def in_use(self) -> int:
        """Threads held by running steps now."""
        with self._cond:
            return sum(lease.threads for lease in self._running)

    def _total_now(self) -> int:
        """The threads this process's steps may use now: the budget, and with other processes' steps on the machine
        at most this process's part of the cores, in proportion to its steps (at least one thread)."""
        if self.machine is None:
            return self.total
        here = len(self._running) + len(self._waiting)
        everywhere = max(here, self.machine.count())
        if not everywhere:
            return self.total
        return max(1, min(self.total, self.cores * here // everywhere))

    def _free(self, total: int) -> int:
        return total - sum(lease.threads for lease in self._running)

    def _target(self, lease: ThreadLease, total: int) -> int:
        # Steps beyond the budget's thread count wait, so the division is over at most `total` steps.
        queue = self._running + self._waiting
        steps = min(len(queue), total)
        position = queue.index(lease)
        if position >= steps:
            return 0
        return total // steps + (1 if position < total % steps else 0)

    def configure(self, total: int) -> None:
        """Change the budget (e.g. a backend was built with another ``FLYWHEEL_CPU_THREADS``); running steps
        adjust at their next checkpoint."""
        with self._cond:
            self.total = max(1, total)
            self._cond.notify_all()

    # ---------------------------------------------------------------------------------------------- leases

    @contextlib.contextmanager
    def lease(self) -> Iterator[ThreadLease]:
        """Run one engine step in the ``with`` block on its share of the budget (waiting for a thread if all are
        taken); torch's thread count of the calling thread is set back on exit."""
        lease = ThreadLease(self)
        lease.previous = _torch_threads()
        machine = self.machine
        registration = machine.register() if machine is not None else None
        try:
            with self._cond:
                self._waiting.append(lease)
                try:
                    self._cond.notify_all()  # running steps see a newcomer at their next checkpoint
                    while True:
                        total = self._total_now()
                        if (
                            self._waiting[0] is lease
                            and self._free(total) >= 1
                            and len(self._running) < total
                        ):
                            break
                        # Other processes' steps end without notifying this process: look again now and then.
                        self._cond.wait(0.25 if machine is not None else None)
                except BaseException:
                    self._waiting.remove(lease)
                    self._cond.notify_all()
                    raise
                self._waiting.remove(lease)
                self._running.append(lease)
                lease.threads = max(1, min(self._free(total), self._target(lease, total)))
                _set_torch_threads(lease.threads)
                self._cond.notify_all()  # the next waiter may fit in what is still free
            log.debug("engine step on %d of %d CPU threads", lease.threads, total)
            try:
                yield lease
            finally:
                with self._cond:
                    self._running.remove(lease)
                    lease.threads = 0
                    self._cond.notify_all()
                _set_torch_threads(lease.previous)
        finally:
            if machine is not None:
                machine.unregister(registration)

    def _rebalance(self, lease: ThreadLease) -> int:
        with self._cond:
            total = self._total_now()
            target = max(1, self._target(lease, total))
            if lease.threads > target:
                # Shrink torch first, then hand the threads over: in-use never exceeds the budget.
                _set_torch_threads(target)
                lease.threads = target
                self._cond.notify_all()
            elif lease.threads < target and self._free(total) > 0:
                lease.threads += min(target - lease.threads, self._free(total))
                _set_torch_threads(lease.threads)
            return lease.threads


_budget: ThreadBudget | None = None
_budget_lock = threading.Lock()
_current = threading.local()


def process_budget(threads: int | None = None) -> ThreadBudget:
    """This process's budget (``threads``, default every core it may use), whose steps share the machine with the
    other flywheel processes' steps. Created on first use, changed when asked for another size."""
    global _budget
    total = thread_budget_size(threads)
    with _budget_lock:
        if _budget is None:
            _budget = ThreadBudget(total, MachineSteps(machine_steps_dir()))
        elif _budget.total != total:
            _budget.configure(total)
        return _budget


@contextlib.contextmanager
def engine_step(threads: int | None = None, *, device: str = "cpu") -> Iterator[ThreadLease]:
    """Run an engine step on its share of the process's CPU thread budget (``threads``: the budget's size, default
    every core). A step on a GPU takes no share. A step inside a step (same thread) runs on the outer step's lease."""
    outer: ThreadLease | None = getattr(_current, "lease", None)
    if outer is not None:
        yield outer
        return
    if not device.startswith("cpu"):
        yield _NoLease(process_budget(threads))
        return
    with process_budget(threads).lease() as lease:
        _current.lease = lease
        try:
            yield lease
        finally:
            _current.lease = None
