"""``flywheel worker``: a Celery worker for scale-out execution (needs Redis at REDIS_URL)."""

from __future__ import annotations

import click

from flywheel.cli._context import needs_config_file, settings_from


@click.command()
@click.option(
    "--queues",
    default="flywheel,accelerator",
    show_default=True,
    help="Queues to consume: 'flywheel' (datasets, finalize) and/or 'accelerator' (evaluations, training).",
)
@click.option(
    "--concurrency",
    type=int,
    help="Worker processes (default: the GPU count for the accelerator queue, else 1).",
)
@click.option(
    "--pool", type=click.Choice(["prefork", "solo", "threads"]), help="Celery pool (default: prefork)."
)
@click.pass_context
@needs_config_file
def worker(ctx: click.Context, queues: str, concurrency: int | None, pool: str | None) -> None:
    """Run a Celery worker that executes flywheel job steps. Queued work survives worker restarts."""
    from flywheel.service.workers._celery import run_worker

    run_worker(
        settings_from(ctx),
        queues=[q.strip() for q in queues.split(",") if q.strip()],
        concurrency=concurrency,
        pool=pool,
    )
