"""Alembic environment: migrations always run on a connection handed in by :func:`flywheel.store.migrate`."""

from alembic import context

from flywheel.store._schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached by running the alembic CLI by hand
    raise RuntimeError(
        "Run migrations with `flywheel db upgrade` (flywheel.store.migrate), not the alembic CLI."
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
