"""Opening the database and bringing its schema up to date."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from flywheel.config import redact_url
from flywheel.errors import MissingDependencyError, StoreError

_MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers (the API, the dashboard) work while a writer ingests; NORMAL sync is durable in WAL mode
    # except for the last transactions on power loss, which is the usual trade-off for a local data store.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def connect(url: str, *, echo: bool = False) -> Engine:
    """Open the store at ``url`` (``sqlite:///path`` or ``postgresql://…``).

    For SQLite the parent directory is created. PostgreSQL URLs without a driver use psycopg 3.
    """
    try:
        parsed = make_url(url)
    except Exception:
        raise StoreError(
            f"FLYWHEEL_DATABASE_URL {redact_url(url)!r} is not a database URL; use sqlite:///PATH or "
            "postgresql://USER@HOST/DB"
        ) from None
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    elif parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise MissingDependencyError("psycopg", "service") from None
        kwargs["pool_pre_ping"] = True
    engine = create_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _alembic_config(connection: Any) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Apply all migrations up to ``revision`` (idempotent)."""
    from alembic import command

    try:
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), revision)
    except OperationalError as exc:
        raise StoreError(
            f"Cannot reach the database at {redact_url(str(engine.url))}: {exc.orig}. "
            "Check FLYWHEEL_DATABASE_URL and that the server is running."
        ) from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"Migrating the database at {redact_url(str(engine.url))} failed: {exc}") from exc


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    """The newest migration shipped with this version of flywheel."""
    from alembic.script import ScriptDirectory

    with connect("sqlite://").connect() as conn:
        script = ScriptDirectory.from_config(_alembic_config(conn))
    head = script.get_current_head()
    assert head is not None
    return head


def open_store(url: str) -> Engine:
    """Connect and migrate: what every entry point (CLI, API, worker) does first."""
    engine = connect(url)
    migrate(engine)
    return engine


def table_names(engine: Engine) -> list[str]:
    return sorted(inspect(engine).get_table_names())
