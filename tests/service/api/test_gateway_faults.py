"""The gateway under real PostgreSQL faults: its store's sessions terminated mid-load (``pg_terminate_backend``, as
a failover or an admin would) and the database refusing new connections for a while. Every call still answers 200,
and once the disk spool has drained the store holds every exchange exactly once.

The upstream and flywheel (``create_app`` over a real PostgreSQL store) run under uvicorn on loopback; the callers
are real ``openai`` clients in threads. The delivery path is not changed: its store delivery is only watched (to
prove that the faults hit deliveries), and the spool's retry interval is shortened (``gateway.spool_retry_s``) so
that the test does not wait 5 s per retry.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import Connection, Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url

import flywheel.service.api._gateway as gateway_module
from flywheel.config import FlywheelConfig, Settings
from flywheel.sdk._sinks import Delivery, Record
from flywheel.service.api import create_app
from flywheel.store import log_records, open_store, quarantined_records
from openai_streams import echo_upstream
from servers import serve

pytestmark = pytest.mark.postgres

FLYWHEEL_KEY = "fw-fault-test-key"
CALLS = 400
CLIENTS = 16
#: Kill rounds in the first half of the calls; each waits (up to 1 s) for a session inside a transaction, to cut a
#: delivery in the middle. More rounds (up to MAX_KILL_ROUNDS) follow while no delivery has been cut yet.
KILL_ROUNDS = 5
MAX_KILL_ROUNDS = 15
#: The least time the database refuses new connections, during the second half of the calls.
OUTAGE_S = 1.5
#: How often the spool retries the store (the default, 5 s, would make the drain slow).
SPOOL_RETRY_S = 0.2
#: Bound on every wait of the test (the calls, the faults, the drain).
DEADLINE_S = 60.0


class DeliveryWatch:
    """Wraps the gateway's store delivery without changing it: notes when and why a delivery raised."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failures: list[tuple[float, str]] = []  #: (monotonic time, error) of every delivery that raised

    def wrap(self, deliver: Callable[[list[Record]], Delivery]) -> Callable[[list[Record]], Delivery]:
        def watched(batch: list[Record]) -> Delivery:
            try:
                return deliver(batch)
            except Exception as exc:
                with self._lock:
                    self.failures.append((time.monotonic(), f"{type(exc).__name__}: {exc}"))
                raise

        return watched

    def failed_since(self, since: float) -> int:
        """How many deliveries raised at or after ``since`` (monotonic time)."""
        with self._lock:
            return sum(1 for at, _ in self.failures if at >= since)


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    """Why: one upstream for the module (start-up costs); it is stateless."""
    with serve(echo_upstream()) as url:
        yield url + "/v1"


@pytest.fixture
def delivery_watch(monkeypatch: pytest.MonkeyPatch) -> DeliveryWatch:
    """Why: "the fault was injected" must mean that deliveries failed, not only that sessions were terminated (an
    idle pooled session is replaced silently); the app's store delivery is wrapped to see its failures."""
    watch = DeliveryWatch()
    real = gateway_module.store_delivery
    monkeypatch.setattr(gateway_module, "store_delivery", lambda engine: watch.wrap(real(engine)))
    return watch


@pytest.fixture
def store(postgres_url: str) -> Iterator[Engine]:
    """Why: the faults are PostgreSQL's own (terminated sessions, refused connections), on a database of its own."""
    engine = open_store(postgres_url)
    yield engine
    engine.dispose()


@pytest.fixture
def gateway_app(
    tmp_path: Path, upstream: str, store: Engine, delivery_watch: DeliveryWatch
) -> Iterator[tuple[str, FastAPI]]:
    """Why: flywheel with the gateway on, its spool and FLYWHEEL_HOME in this test's directory; stopped after."""
    config = FlywheelConfig.model_validate(
        {
            "gateway": {
                "upstream": {"base_url": upstream},
                "spool_dir": str(tmp_path / "spool"),
                "spool_retry_s": SPOOL_RETRY_S,  # retries every 0.2 s instead of 5 s: the test waits less
            }
        }
    )
    env = {"FLYWHEEL_HOME": str(tmp_path / "home"), "FLYWHEEL_API_KEYS": FLYWHEEL_KEY}
    app = create_app(Settings.from_env(config, None, env), engine=store, executor=_NoExecutor())
    with serve(app) as url:
        yield url, app


class _NoExecutor:
    def submit(self, job_id: str) -> None:  # the gateway runs no jobs
        pass


class Progress:
    """How many calls have been answered, and the gate the second half of the calls waits at until the outage."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answered = 0
        self.outage_started = threading.Event()

    def answered(self) -> int:
        with self._lock:
            return self._answered

    def add(self) -> None:
        with self._lock:
            self._answered += 1


class StoreFaults(threading.Thread):
    """Terminates every session on the test database ``KILL_ROUNDS`` times or more during the first half of the
    calls (each time as soon as one is inside a transaction), then makes the database refuse connections
    and terminates its sessions once more, until a delivery has failed against it and ``OUTAGE_S`` has passed.

    It works from the maintenance database, so none of its own sessions is a target.
    """

    def __init__(self, database_url: str, progress: Progress, watch: DeliveryWatch) -> None:
        super().__init__(name="store-faults", daemon=True)
        url = make_url(database_url)
        self.database = url.database
        self.admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        self.progress = progress
        self.watch = watch
        self.killed = 0  #: sessions terminated
        self.killed_busy = 0  #: of them, sessions inside a statement or a transaction
        #: (start, end) in monotonic time of the outage, while the database refused connections
        self.outage: tuple[float, float] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.admin.connect() as conn:
                for round_ in range(1, MAX_KILL_ROUNDS + 1):
                    if round_ > KILL_ROUNDS and self.watch.failed_since(0.0):
                        break
                    threshold = min(round_, KILL_ROUNDS) * CALLS // (2 * (KILL_ROUNDS + 1))
                    self._wait(functools.partial(self._answered, threshold))
                    self._wait(lambda: self._busy(conn), timeout=1.0, required=False)
                    self._terminate(conn)
                self._refuse_connections(conn)
        except BaseException as exc:
            self.error = exc
        finally:
            self.progress.outage_started.set()  # never leave the callers waiting, whatever happened here

    def _refuse_connections(self, conn: Connection) -> None:
        started = time.monotonic()
        try:
            self.allow_connections(conn, allow=False)
            self.progress.outage_started.set()
            self._terminate(conn)
            # The sink hands a batch over at 100 records or after 1 s; the spool retries every SPOOL_RETRY_S.
            self._wait(
                lambda: time.monotonic() >= started + OUTAGE_S and self.watch.failed_since(started) > 0
            )
        finally:
            self.allow_connections(conn, allow=True)
            self.outage = (started, time.monotonic())

    def _answered(self, calls: int) -> bool:
        return self.progress.answered() >= calls

    def allow_connections(self, conn: Connection, *, allow: bool) -> None:
        conn.execute(text(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS {str(allow).lower()}'))

    def _busy(self, conn: Connection) -> bool:
        sessions = conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND (state = 'idle in transaction' "
                "OR state = 'active' AND query NOT ILIKE 'commit%')"
            ),
            {"db": self.database},
        )
        return bool(sessions)

    def _terminate(self, conn: Connection) -> None:
        states = conn.execute(
            text("SELECT state, pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db"),
            {"db": self.database},
        ).all()
        self.killed += len(states)
        self.killed_busy += sum(1 for state, _ in states if state != "idle")

    @staticmethod
    def _wait(condition: Callable[[], bool], timeout: float = DEADLINE_S, *, required: bool = True) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                if required:
                    raise TimeoutError(f"a fault-injection condition was not met within {timeout} s")
                return
            time.sleep(0.002)


def call_gateway(url: str, questions: list[tuple[int, str]], progress: Progress, failures: list[str]) -> None:
    """One client: asks ``questions`` in turn; those of the second half of all calls once the outage has begun."""
    client = openai.OpenAI(api_key=FLYWHEEL_KEY, base_url=url + "/v1", max_retries=0, timeout=30)
    try:
        for index, question in questions:
            if index >= CALLS // 2 and not progress.outage_started.wait(DEADLINE_S):
                failures.append(f"{question}: the outage never began")
                return
            raw = client.chat.completions.with_raw_response.create(
                model="teacher", messages=[{"role": "user", "content": question}]
            )
            answer = raw.parse().choices[0].message.content
            if raw.status_code != 200 or answer != f"echo: {question}":
                failures.append(f"{question}: HTTP {raw.status_code}, {answer!r}")
            progress.add()
    except Exception as exc:  # a failed call is what the test looks for; it must not end the other calls
        failures.append(f"{type(exc).__name__}: {exc}")
    finally:
        client.close()


def stored_questions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(select(log_records.c.data)).all()
    return [orjson.loads(row.data)["request"]["messages"][-1]["content"] for row in rows]


def test_every_call_is_stored_exactly_once_when_store_sessions_are_killed_and_refused_mid_load(
    postgres_url: str, store: Engine, gateway_app: tuple[str, FastAPI], delivery_watch: DeliveryWatch
) -> None:
    url, app = gateway_app
    gateway = app.state.gateway
    sent = [f"question {i} of the fault test" for i in range(CALLS)]
    progress = Progress()
    faults = StoreFaults(postgres_url, progress, delivery_watch)
    failures: list[str] = []
    numbered = list(enumerate(sent))
    clients = [
        threading.Thread(target=call_gateway, args=(url, mine, progress, failures), daemon=True)
        for mine in (numbered[k::CLIENTS] for k in range(CLIENTS))
    ]
    try:
        faults.start()
        for client in clients:
            client.start()
        for client in clients:
            client.join(DEADLINE_S)
        faults.join(DEADLINE_S)
    finally:
        with faults.admin.connect() as conn:  # whatever happened, the database takes connections again
            faults.allow_connections(conn, allow=True)
        faults.admin.dispose()

    assert not any(t.is_alive() for t in [*clients, faults]), "a client or the fault thread hung"
    assert faults.error is None, repr(faults.error)
    assert failures == [], failures[:5]
    assert progress.answered() == CALLS
    # The faults hit deliveries: some were cut by a terminated session, some met a database that refused them.
    assert faults.killed > 0 and faults.outage is not None
    start, end = faults.outage
    cut = [
        error
        for at, error in delivery_watch.failures
        if not start <= at <= end and "not currently accepting connections" not in error
    ]
    refused = [error for at, error in delivery_watch.failures if start <= at <= end]
    assert cut, f"no delivery was cut: {faults.killed} sessions terminated, {faults.killed_busy} of them busy"
    assert refused and end - start >= OUTAGE_S

    # Drain: the sink hands its last batch over, then the spool's writer stores it and replays what is spooled.
    assert gateway.sink.stats.submitted == CALLS
    assert gateway.sink.flush(DEADLINE_S)
    deadline = time.monotonic() + DEADLINE_S
    while (spool := gateway.spool.stats).pending_segments or spool.in_hand:
        assert time.monotonic() < deadline, f"the spool did not drain: {spool}"
        time.sleep(0.02)

    stored = stored_questions(store)
    assert Counter(stored) == Counter(sent), (
        f"{len(stored)} stored of {CALLS} sent; missing {sorted(set(sent) - set(stored))[:5]}, "
        f"doubled {[q for q, n in Counter(stored).items() if n > 1][:5]}"
    )
    with store.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(quarantined_records)) == 0
    sink = gateway.sink.stats
    assert (sink.dropped, sink.failed, sink.quarantined, spool.quarantined) == (0, 0, 0, 0), (sink, spool)
    # What the store could not take went through the disk.
    assert spool.spooled > 0 and spool.replayed > 0, spool
