"""A disk spool in front of a ``deliver(batch)`` function: records wait on disk while the destination is down.

It sits in ``flywheel.sdk`` beside :class:`~flywheel.sdk._sinks.BackgroundSink` because it knows only that contract
(``deliver(batch) -> Delivery``, raising when the destination is unavailable) and nothing of the gateway or the
store: any sink's delivery can be wrapped. The gateway wraps its store delivery with it.

:class:`SpoolingDelivery` is itself a delivery function. On each batch it first replays the spool, oldest segment
first, then delivers the new batch. While anything is still spooled (the destination is down, or was down less than
``retry_interval`` seconds ago) the new batch is appended to the spool instead, so records reach the destination in
the order they were submitted. A batch whose delivery raises is spooled too; either way the call returns normally
(only what was really stored is counted in its :class:`Delivery`), so the sink never counts the batch as failed.

The spool is a directory of segment files, one per batch, one JSON record per line. A segment is written to a
``.tmp`` name, flushed, fsync'd and renamed into place (and the directory fsync'd), so a segment either exists whole
or not at all. A segment is deleted only after its delivery succeeded. A crash between that delivery and the
deletion replays the segment once more, which stores nothing twice: ingestion identifies a record by its content
hash and counts a second copy as a duplicate. Segment names sort by creation time, so two instances over the same
directory (a process and its successor) replay in order.

What is lost: nothing across a store outage or a clean shutdown (``close`` of the sink delivers or spools what is
queued). A crash loses only what was in memory: the sink's queue (``max_queue`` records) plus the batch in hand
(``batch_size``) — 10,000 + 100 records with the :class:`BackgroundSink` defaults. A segment torn by a crash while
it was being written (a leftover ``.tmp`` file, or a file with a cut-off last line) is found at start-up or replay:
its complete lines are delivered, the file is kept as ``*.torn`` and a warning names it.

A timer thread (:meth:`SpoolingDelivery.start`) replays the spool every ``retry_interval`` seconds, so it drains
without new traffic and leftovers from a previous process are replayed at start-up. Every call of the wrapped
``deliver`` holds one lock: it runs in the sink's thread or in the timer's, never in both at once.

Not handled: a store that is slow but does not fail (the sink's queue fills and drops, as without a spool); a batch
that fails on every attempt blocks the ones after it (logged at each retry); the spool's size on disk is unbounded.
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
    """Counters of a spool since it was created (a snapshot), and what waits on disk now."""

    spooled: int = 0  #: records written to the spool because the destination was down (or still catching up)
    replayed: int = 0  #: spooled records delivered later (stored, duplicate or quarantined)
    torn: int = 0  #: segments found torn (a crash mid-write); their complete lines were delivered
    pending_segments: int = 0  #: segments on disk waiting for replay


class SpoolingDelivery:
    """Wraps ``deliver(batch)``: batches that cannot be delivered wait in ``directory`` and are replayed in order.

    ``directory`` is created if missing; leftover ``.tmp`` segments of a crashed process are adopted (and checked
    for torn lines on replay). ``retry_interval`` (seconds) is how long after a failure new batches go straight to
    the spool without trying the destination, and how often the timer thread replays.
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
        self._lock = threading.RLock()
        self._retry_at = 0.0  # monotonic time before which the destination is not tried again
        self._names = itertools.count()
        self._counts = {"spooled": 0, "replayed": 0, "torn": 0}
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self._adopt_leftovers()

    # -- the delivery function --------------------------------------------------------------------------------

    def __call__(self, batch: list[Record]) -> Delivery:
        """Replay the spool, then deliver ``batch`` — or spool it if the destination is down or still behind."""
        with self._lock:
            replayed = self._replay()
            if not batch:
                return replayed
            if self._segments() or time.monotonic() < self._retry_at:
                self._append(batch)
                return replayed
            try:
                result = self._deliver(batch)
            except Exception as exc:
                self._failed(exc, f"a batch of {len(batch)} records")
                self._append(batch)
                return replayed
            return _sum(replayed, result)

    def replay(self) -> Delivery:
        """Deliver spooled segments oldest first until the spool is empty or a delivery fails (the timer's job)."""
        with self._lock:
            return self._replay(force=True)

    # -- the timer --------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the daemon thread that replays leftovers now and the spool every ``retry_interval`` seconds."""
        if self._timer is not None:
            return
        self._timer = threading.Thread(target=self._run_timer, name="flywheel-spool-replay", daemon=True)
        self._timer.start()

    def close(self, timeout: float | None = None) -> None:
        """Stop the timer thread; what is spooled stays on disk for the next process. Idempotent."""
        self._stop.set()
        if self._timer is not None:
            self._timer.join(timeout)

    def _run_timer(self) -> None:
        while True:
            try:
                if self._segments():
                    self.replay()
            except Exception as exc:  # the timer must survive a full disk or a vanished directory
                logger.warning("flywheel: replaying the spool in %s failed: %s", self.directory, exc)
            if self._stop.wait(self._retry_interval):
                return

    @property
    def stats(self) -> SpoolStats:
        """A snapshot of this spool's counters and of the segments on disk."""
        with self._lock:
            return SpoolStats(**self._counts, pending_segments=len(self._segments()))

    # -- the spool ----------------------------------------------------------------------------------------------

    def _replay(self, *, force: bool = False) -> Delivery:
        total = Delivery(stored=0)
        if not force and time.monotonic() < self._retry_at:
            return total
        for segment in self._segments():
            records, bad_lines = _read_segment(segment)
            if records:
                try:
                    result = self._deliver(records)
                except Exception as exc:
                    self._failed(exc, f"spooled segment {segment.name}")
                    return total
                total = _sum(total, result)
                self._counts["replayed"] += len(records)
            if bad_lines:
                self._counts["torn"] += 1
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
        self._retry_at = 0.0
        return total

    def _append(self, batch: list[Record]) -> None:
        """Write ``batch`` as one new segment: temp name, fsync, rename, fsync the directory."""
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._names):06d}{SEGMENT_SUFFIX}"
        final = self.directory / name
        tmp = final.with_name(name + _TMP_SUFFIX)
        with open(tmp, "wb") as fh:
            for record in batch:
                fh.write(orjson.dumps(record, default=str) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(final)
        _fsync_directory(self.directory)
        self._counts["spooled"] += len(batch)

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
        first = self._retry_at == 0.0
        self._retry_at = time.monotonic() + self._retry_interval
        (logger.warning if first else logger.debug)(
            "flywheel: %s could not be delivered (%s); spooled in %s, retrying every %g s",
            what,
            exc,
            self.directory,
            self._retry_interval,
        )


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
