"""Migrations: an empty database migrates to exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from flywheel.errors import StoreError
from flywheel.store import connect, current_revision, head_revision, metadata, migrate


def test_empty_database_migrates_to_the_declared_schema(store_url: str) -> None:
    engine = connect(store_url)
    assert current_revision(engine) is None
    migrate(engine)
    assert current_revision(engine) == head_revision()
    insp = inspect(engine)
    assert set(insp.get_table_names()) == set(metadata.tables) | {"alembic_version"}
    for table in metadata.sorted_tables:
        columns = {c["name"]: c for c in insp.get_columns(table.name)}
        assert set(columns) == {c.name for c in table.columns}, table.name
        for column in table.columns:
            assert columns[column.name]["nullable"] == column.nullable, (table.name, column.name)
        declared_indexes = {tuple(c.name for c in ix.columns) for ix in table.indexes}
        found_indexes = {tuple(ix["column_names"]) for ix in insp.get_indexes(table.name)}
        assert declared_indexes <= found_indexes, table.name
        declared_fks = {(fk.parent.name, fk.column.table.name) for fk in table.foreign_keys}
        found_fks = {
            (fk["constrained_columns"][0], fk["referred_table"]) for fk in insp.get_foreign_keys(table.name)
        }
        assert declared_fks == found_fks, table.name
    uniques = {tuple(u["column_names"]) for u in insp.get_unique_constraints("log_records")}
    assert ("record_hash",) in uniques
    engine.dispose()


def test_migrating_twice_is_a_no_op(store_url: str) -> None:
    engine = connect(store_url)
    migrate(engine)
    migrate(engine)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_migration_names_are_append_only_and_ordered() -> None:
    from pathlib import Path

    import flywheel.store

    versions = Path(flywheel.store.__file__).parent / "migrations" / "versions"
    names = sorted(p.stem for p in versions.glob("[0-9]*.py"))
    assert names[:3] == ["0001_log_records", "0002_jobs", "0003_quarantine_raw_hash"]
    assert [int(n.split("_")[0]) for n in names] == list(range(1, len(names) + 1))


def test_unreachable_postgres_gives_a_clear_error_without_password() -> None:
    engine = connect("postgresql://user:hunter2@127.0.0.1:1/nowhere")
    with pytest.raises(StoreError) as info:
        migrate(engine)
    assert "hunter2" not in str(info.value)
    assert "FLYWHEEL_DATABASE_URL" in str(info.value)


def test_quarantine_has_a_unique_key_per_source_and_input(store_url: str) -> None:
    engine = connect(store_url)
    migrate(engine)
    unique = {
        tuple(ix["column_names"]) for ix in inspect(engine).get_indexes("quarantined_records") if ix["unique"]
    }
    assert ("raw_hash",) in unique
    engine.dispose()


def test_0003_keeps_quarantine_rows_written_before_it(store_url: str) -> None:
    """Rows from before the key get NULL, which the unique index does not compare: old duplicates do not block the
    migration, and new rows are deduplicated from then on."""
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    engine = connect(store_url)
    migrate(engine, "0002_jobs")
    row = "('file:/logs.jsonl', 1, 'not valid JSON', '{broken', 1.0)"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO quarantined_records (source, line_number, reason, raw, created_at) "
                f"VALUES {row}, {row}"
            )
        )
    migrate(engine)
    assert current_revision(engine) == "0003_quarantine_raw_hash"
    with engine.begin() as conn:
        assert conn.execute(text("SELECT raw_hash FROM quarantined_records")).scalars().all() == [None, None]
        insert = text(
            "INSERT INTO quarantined_records (source, line_number, reason, raw, created_at, raw_hash) "
            "VALUES ('api', NULL, 'r', 'x', 1.0, 'q1:same')"
        )
        conn.execute(insert)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert)
    engine.dispose()
