"""``flywheel export JOB --candidate NAME [--merged] --out DIR [--force]``: a fine-tuned candidate, ready to serve."""

from __future__ import annotations

import json
from pathlib import Path

import click

from flywheel.cli._context import settings_from


def _size(n: int) -> str:
    """Bytes for people: 512 B, 4.7 MB, 1.2 GB."""
    if n < 1024:
        return f"{n} B"
    value = n / 1024
    for unit in ("KB", "MB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


@click.command()
@click.argument("job_id")
@click.option("--candidate", required=True, help="The fine-tuned candidate (its model_name in the job).")
@click.option(
    "--merged",
    is_flag=True,
    help="Export the base model with the adapter merged in (a plain transformers folder) instead of the adapter.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output directory (new or empty).",
)
@click.option(
    "--force", is_flag=True, help="Write into a non-empty directory, replacing an earlier export there."
)
@click.option(
    "--dtype",
    type=click.Choice(["float32", "bfloat16", "float16"]),
    default="float32",
    show_default=True,
    help="Weights dtype of a --merged export (float32 keeps the weights the job evaluated).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@click.pass_context
def export(
    ctx: click.Context,
    job_id: str,
    candidate: str,
    merged: bool,
    out_dir: Path,
    force: bool,
    dtype: str,
    as_json: bool,
) -> None:
    """Export the LoRA adapter (or, with --merged, the merged model) of a finished job's candidate, with a model
    card (README.md) and flywheel_export.json."""
    from flywheel.pipeline.export import export_candidate
    from flywheel.service.jobs import JobRepository, default_backends
    from flywheel.store import open_store

    settings = settings_from(ctx)
    engine = open_store(settings.database_url)
    try:
        result = export_candidate(
            JobRepository(engine),
            job_id,
            candidate,
            out_dir,
            merged=merged,
            force=force,
            dtype=dtype,
            cache_dir=default_backends(settings).cache_dir,
        )
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    what = "merged model" if merged else "LoRA adapter"
    click.echo(f"Exported the {what} of {candidate} (job {job_id}) to {result.out_dir}:")
    for file in result.files:
        click.echo(f"  {file.path:<32} {_size(file.bytes):>10}")
    click.echo(f"{len(result.files)} files, {_size(result.total_bytes)}. Loading it: see README.md there.")
