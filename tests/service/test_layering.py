"""Layering: the job tables have one owner. Outside the repository (``service/jobs/_repository.py``), nothing in
``service/`` builds SQL or touches a table; routes, workers, the runner and the report call the repository.

A static scan of the source (``ast``), so an import inside a function counts as well as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import flywheel

SERVICE = Path(flywheel.__file__).parent / "service"
REPOSITORY = SERVICE / "jobs" / "_repository.py"
#: What building SQL looks like: SQLAlchemy's statement constructors and the store's table objects.
SQL_NAMES = frozenset({"select", "insert", "update", "delete", "text", "func", "and_", "or_"})
TABLES = frozenset(
    {
        "jobs",
        "job_steps",
        "job_candidates",
        "evaluations",
        "evaluation_samples",
        "customizations",
        "log_records",
    }
)


def sql_imports(source: str) -> list[str]:
    """``line: module.name`` for every import of an SQL constructor or a store table in ``source``."""
    hits = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom) or node.module is None:
            continue
        for alias in node.names:
            if (node.module.startswith("sqlalchemy") and alias.name in SQL_NAMES) or (
                node.module.startswith("flywheel.store") and alias.name in TABLES
            ):
                hits.append(f"{node.lineno}: {node.module}.{alias.name}")
    return hits


def test_no_sql_in_service_outside_the_repository() -> None:
    files = [path for path in sorted(SERVICE.rglob("*.py")) if path != REPOSITORY]
    assert files and REPOSITORY.is_file()
    offences = {str(p.relative_to(SERVICE)): hits for p in files if (hits := sql_imports(p.read_text()))}
    assert offences == {}, "SQL on the job tables belongs in JobRepository: " + repr(offences)


def test_the_scan_finds_sql_constructors_and_tables() -> None:
    source = """
from sqlalchemy import Engine, select
from flywheel.store import open_store, job_steps

def f():
    from sqlalchemy.sql import update
"""
    assert sql_imports(source) == [
        "2: sqlalchemy.select",
        "3: flywheel.store.job_steps",
        "6: sqlalchemy.sql.update",
    ]
    assert sql_imports(REPOSITORY.read_text())  # the repository itself does build SQL
