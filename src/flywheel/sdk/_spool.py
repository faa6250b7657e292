"""A disk spool in front of a ``deliver(batch)`` function: records wait on disk while the destination is down or slow.

It sits in ``flywheel.sdk`` beside :class:`~flywheel.sdk._sinks.BackgroundSink` because it knows only that contract
(``deliver(batch) -> Delivery``, raising when the destination is unavailable) and nothing of the gateway or the
store: any sink's delivery can be wrapped. The gateway wraps its store delivery with it.

:class:`SpoolingDelivery` is itself a delivery function, and it runs in one of two modes.

*Started* (:meth:`SpoolingDelivery.start`, what the gateway does): a writer thread of its own owns the destination.
A call hands the batch to the writer when the writer is idle and nothing is spooled, and otherwise appends it to the
spool; either way it returns at once, so the caller (the sink's thread) never waits for the destination and the
sink's bounded queue keeps draining whether the store is down, slow or hung. The writer delivers the batch it was
handed, then replays the spool oldest segment first; a batch whose delivery raises is spooled under the name it was
given when it was handed over, so it still sorts before everything that arrived after it.

*Not started*: a call delivers in the caller's thread, replaying the spool first; while anything is spooled (or the
destination failed less than ``retry_interval`` seconds ago) the new batch is appended instead.

Either way records reach the destination in the order they were submitted, the call never raises, and only what was
really stored is counted (in the call's :class:`Delivery` when not started, in :attr:`SpoolingDelivery.stats`).

The spool is a directory of segment files, one per batch, one JSON record per line. A segment is written to a
``.tmp`` name, flushed, fsync'd and renamed into place (and the directory fsync'd), so a segment either exists whole
or not at all. A segment is deleted only after its delivery succeeded. A crash between that delivery and the
deletion replays the segment once more, which stores nothing twice: ingestion identifies a record by its content
hash and counts a second copy as a duplicate. Segment names sort by the order batches were handed over, so two
instances over the same directory (a process and its successor) replay in order.

What is lost: nothing across a store outage, a slow store or a clean shutdown (``close`` of the sink, then of the
spool, spools what was not delivered; a batch still in the writer's hands when ``close`` gives up waiting is spooled
as well, and stored at most once thanks to the content hash). A crash loses only what was in memory: the sink's queue
(``max_queue`` records), the batch in the sink's hand (``batch_size``) and the one in the writer's hand
(``batch_size``) — 10,000 + 100 + 100 records with the :class:`BackgroundSink` defaults. A segment torn by a crash
while it was being written (a leftover ``.tmp`` file, or a file with a cut-off last line) is found at start-up or
replay: its complete lines are delivered, the file is kept as ``*.torn`` and a warning names it.

Not handled: a batch that fails on every attempt blocks the ones after it (logged at each retry); the spool's size on
disk is unbounded (a store down for a day at 1,000 calls/s spools about 86 million records — the disk, not memory,
is the limit, and :attr:`SpoolingDelivery.stats` shows ``pending_segments``).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from flywheel.sdk._sinks import Delivery, Record

logger = logging.getLogger("flywheel.sdk")

SEGMENT_SUFFIX = ".jsonl"
TORN_SUFFIX = ".torn"
_TMP_SUFFIX = ".tmp"


@dataclass(frozen=True)
class SpoolStats:
    """Counters of a spool since it was created (a snapshot), and what waits now."""

    stored: int = 0  #: records the destination stored (duplicates included), directly or replayed
    quarantined: int = 0  #: records the destination quarantined
    spooled: int = 0  #: records written to the spool because the destination was down, slow or catching up
    replayed: int = 0  #: spooled records delivered later (stored, duplicate or quarantined)
    torn: int = 0  #: segments found torn (a crash mid-write); their complete lines were delivered
    pending_segments: int = 0  #: segments on disk waiting for replay
    in_hand: int = 0  #: records handed to the writer thread and not yet delivered nor spooled


class SpoolingDelivery:
    """Wraps ``deliver(batch)``: batches that cannot be delivered at once wait in ``directory``, replayed in order.

    ``directory`` is created if missing; leftover ``.tmp`` segments of a crashed process are adopted (and checked
    for torn lines on replay). ``retry_interval`` (seconds) is how long after a failure the destination is left
    alone (new batches are spooled meanwhile), and how often a started spool looks at its directory unprompted.
    """

    def __init__(
        self,
        deliver: Callable[[list[Record]], Delivery],
        directory: str | os.PathLike[str],
        *,
        retry_interval: float = 5.0,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._deliver = deliver
        self._retry_interval = retry_interval
        #: Held around every call of the wrapped ``deliver`` and the segment reads and deletions of a replay.
        self._deliver_lock = threading.RLock()
        #: Guards the hand-over slot and the counters; the writer waits on it.
        self._state = threading.Condition()
        self._retry_at = 0.0  # monotonic time before which the destination is not tried again
        self._names = itertools.count()
        self._counts = {"stored": 0, "quarantined": 0, "spooled": 0, "replayed": 0, "torn": 0}
        self._handed: tuple[str, list[Record]] | None = None  # waiting for the writer
        self._writing: tuple[str, list[Record]] | None = None  # being delivered by the writer
        self._replaying = False
        self._stop = False
        self._writer: threading.Thread | None = None
        self._adopt_leftovers()

    # -- the delivery function --------------------------------------------------------------------------------

    def __call__(self, batch: list[Record]) -> Delivery:
        """Hand ``batch`` over (started) or deliver it (not started) — or spool it if the destination is down,
        slow or still behind. Never raises."""
        if not batch:
            return Delivery(stored=0)
        name = self._next_name()
        if self._writer is None:
            return self._deliver_here(name, batch)
        with self._state:
            free = self._handed is None and self._writing is None and not self._replaying
            if free and time.monotonic() >= self._retry_at and not self._segments():
                self._handed = (name, batch)
                self._state.notify_all()
                return Delivery(stored=0)
        self._append(name, batch)
        with self._state:
            self._state.notify_all()
        return Delivery(stored=0)

    def replay(self) -> Delivery:
        """Deliver spooled segments oldest first until the spool is empty or a delivery fails."""
        with self._deliver_lock:
            return self._replay()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every batch handed over is stored, or safely spooled while the destination is down (nothing
        in the writer's hand, and nothing spooled unless the destination is in its retry pause); False on timeout.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._state:
                busy = self._handed is not None or self._writing is not None or self._replaying
                pausing = time.monotonic() < self._retry_at
            if not busy and (pausing or not self._segments()):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.005)

    # -- the writer thread -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread: it replays leftovers now, then delivers what it is handed and drains the spool
        whenever the destination may be tried (at once after a success, ``retry_interval`` after a failure)."""
        if self._writer is not None:
            return
        self._writer = threading.Thread(target=self._run_writer, name="flywheel-spool-writer", daemon=True)
        self._writer.start()

    def close(self, timeout: float | None = None) -> None:
        """Deliver (or spool) what the writer holds and stop it; what is spooled stays on disk for the next
        process. A batch still being delivered when ``timeout`` runs out is spooled too. Idempotent."""
        writer = self._writer
        with self._state:
            self._stop = True
            self._state.notify_all()
        if writer is None:
            return
        writer.join(timeout)
        if writer.is_alive():
            with self._state:
                stuck = [job for job in (self._writing, self._handed) if job is not None]
                self._handed = None
            for name, batch in stuck:  # may be stored as well: a replay then counts duplicates, nothing twice
                self._append(name, batch)
            logger.warning(
                "flywheel: the store did not answer within %s s of shutdown; %d records kept in the spool %s",
                timeout,
                sum(len(batch) for _, batch in stuck),
                self.directory,
            )

    def _run_writer(self) -> None:
        while True:
            with self._state:
                while True:
                    if self._handed is not None:
                        job: tuple[str, list[Record]] | None = self._handed
                        self._handed, self._writing = None, job
                        break
                    if self._stop:
                        return
                    wait = self._retry_at - time.monotonic()
                    if wait <= 0 and self._segments():
                        job = None
                        self._replaying = True
                        break
                    self._state.wait(wait if wait > 0 else self._retry_interval or None)
            try:
                if job is not None:
                    self._deliver_handed(*job)
                else:
                    self.replay()
            except Exception as exc:  # the writer must survive a full disk or a vanished directory
                logger.warning("flywheel: the spool's writer failed in %s: %s", self.directory, exc)
                with self._state:
                    self._retry_at = time.monotonic() + self._retry_interval
            finally:
                with self._state:
                    self._writing, self._replaying = None, False

    def _deliver_handed(self, name: str, batch: list[Record]) -> None:
        with self._deliver_lock:
            try:
                result = self._deliver(batch)
            except Exception as exc:
                self._failed(exc, f"a batch of {len(batch)} records")
                self._append(name, batch)  # its name sorts before the batches spooled while it was in hand
                return
        self._count(stored=result.stored, quarantined=result.quarantined)

    # -- not started: the caller delivers ---------------------------------------------------------------------

    def _deliver_here(self, name: str, batch: list[Record]) -> Delivery:
        with self._deliver_lock:
            replayed = self._replay() if time.monotonic() >= self._retry_at else Delivery(stored=0)
            if self._segments() or time.monotonic() < self._retry_at:
                self._append(name, batch)
                return replayed
            try:
                result = self._deliver(batch)
            except Exception as exc:
                self._failed(exc, f"a batch of {len(batch)} records")
                self._append(name, batch)
                return replayed
            self._count(stored=result.stored, quarantined=result.quarantined)
            return _sum(replayed, result)

    @property
    def stats(self) -> SpoolStats:
        """A snapshot of this spool's counters and of what waits on disk and in the writer's hand."""
        with self._state:
            in_hand = sum(len(job[1]) for job in (self._handed, self._writing) if job is not None)
            return SpoolStats(**self._counts, pending_segments=len(self._segments()), in_hand=in_hand)

    # -- the spool ----------------------------------------------------------------------------------------------

    def _replay(self) -> Delivery:
        """Deliver the segments oldest first (the caller holds the delivery lock); stop at the first failure."""
        total = Delivery(stored=0)
        while segments := self._segments():
            for segment in segments:
                records, bad_lines = _read_segment(segment)
                if records:
                    try:
                        result = self._deliver(records)
                    except Exception as exc:
                        self._failed(exc, f"spooled segment {segment.name}")
                        return total
                    total = _sum(total, result)
                    self._count(stored=result.stored, quarantined=result.quarantined, replayed=len(records))
                if bad_lines:
                    self._count(torn=1)
                    kept = segment.with_name(segment.name + TORN_SUFFIX)
                    segment.replace(kept)
                    logger.warning(
                        "flywheel: spooled segment %s was torn (a crash while writing it): %d complete records "
                        "delivered, %d unreadable lines kept in %s",
                        segment.name,
                        len(records),
                        bad_lines,
                        kept,
                    )
                else:
                    with contextlib.suppress(FileNotFoundError):  # another instance replayed it first
                        segment.unlink()
        if total.stored or total.quarantined:
            logger.info("flywheel: replayed spooled records from %s", self.directory)
        with self._state:
            self._retry_at = 0.0
        return total

    def _next_name(self) -> str:
        return f"{time.time_ns():020d}-{os.getpid()}-{next(self._names):09d}{SEGMENT_SUFFIX}"

    def _append(self, name: str, batch: list[Record]) -> None:
        """Write ``batch`` as segment ``name``: temp name, fsync, rename, fsync the directory."""
        final = self.directory / name
        tmp = final.with_name(name + _TMP_SUFFIX)
        with open(tmp, "wb") as fh:
            fh.write(b"".join(orjson.dumps(record, default=str) + b"\n" for record in batch))
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(final)
        _fsync_directory(self.directory)
        self._count(spooled=len(batch))

    def _segments(self) -> list[Path]:
        return sorted(self.directory.glob("*" + SEGMENT_SUFFIX))

    def _adopt_leftovers(self) -> None:
        """A ``.tmp`` segment outlived a crash mid-write: keep it in the replay, where torn lines are found."""
        for tmp in sorted(self.directory.glob("*" + SEGMENT_SUFFIX + _TMP_SUFFIX)):
            tmp.replace(tmp.with_name(tmp.name.removesuffix(_TMP_SUFFIX)))
            logger.warning(
                "flywheel: found %s, left by a crash while spooling; it will be replayed", tmp.name
            )

    def _failed(self, exc: Exception, what: str) -> None:
        with self._state:
            first = self._retry_at == 0.0
            self._retry_at = time.monotonic() + self._retry_interval
        (logger.warning if first else logger.debug)(
            "flywheel: %s could not be delivered (%s); spooled in %s, retrying every %g s",
            what,
            exc,
            self.directory,
            self._retry_interval,
        )

    def _count(self, **deltas: int) -> None:
        with self._state:
            for key, value in deltas.items():
                self._counts[key] += value


def _read_segment(path: Path) -> tuple[list[Record], int]:
    """The complete records of a segment, and how many lines could not be read (a torn write)."""
    records: list[Record] = []
    bad = 0
    for line in path.read_bytes().split(b"\n"):
        if not line:
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            bad += 1
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            bad += 1
    return records, bad


def _fsync_directory(directory: Path) -> None:
    """Make a rename durable (POSIX); a platform that cannot open a directory skips it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sum(a: Delivery, b: Delivery) -> Delivery:
    reasons = dict(a.reasons or {})
    for key, value in (b.reasons or {}).items():
        reasons[key] = reasons.get(key, 0) + value
    return Delivery(
        stored=a.stored + b.stored, quarantined=a.quarantined + b.quarantined, reasons=reasons or None
    )
