"""``flywheel ingest``: JSONL / JSONL.gz files or an Elasticsearch index into the store."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from flywheel.cli._context import settings_from


def _progress_bar(enabled: bool) -> tuple[Any, Callable[[int, int], None] | None]:
    if not enabled:
        return None, None
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=True,
    )
    task = progress.add_task("ingesting", total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    return progress, update


def _print_report(report: dict[str, Any], as_json: bool) -> None:
    from flywheel.pipeline.ingest import NOT_UTF8_REASON

    if as_json:
        report = {k: v for k, v in report.items() if k != "errors"}
        click.echo(json.dumps(report))
    else:
        click.echo(
            f"{report['accepted']} records stored, {report['duplicates']} duplicates skipped, "
            f"{report['quarantined']} quarantined ({report['seconds']} s)."
        )
        for reason, count in report["quarantine_reasons"].items():
            click.echo(f"  quarantined {count:>8} × {reason}")
        if report["quarantined"]:
            click.echo(
                f"Quarantined lines are kept in the store, each once per file (ingestion {report['ingestion_id']}); "
                "see them with `flywheel quarantine list`."
            )
        if NOT_UTF8_REASON in report["quarantine_reasons"]:
            click.echo(
                "hint: some lines are not UTF-8 text. Convert the file to UTF-8 (e.g. `iconv -f WINDOWS-1252 "
                "-t UTF-8 FILE > FILE.utf8.jsonl`) and ingest it again; stored records are skipped as duplicates."
            )
    if report.get("error"):
        click.echo(f"error: {report['error']}", err=True)


@click.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--workload-id", help="Workload id for every record (required for the reference loader format)."
)
@click.option("--client-id", help="Client id for every record (required for the reference loader format).")
@click.option(
    "--from-elasticsearch", "es_url", metavar="URL", help="Import from an Elasticsearch cluster instead."
)
@click.option(
    "--index", "es_index", metavar="NAME", help="Elasticsearch index (default: $ES_COLLECTION_NAME)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the counts.")
@click.pass_context
def ingest(
    ctx: click.Context,
    path: str | None,
    workload_id: str | None,
    client_id: str | None,
    es_url: str | None,
    es_index: str | None,
    as_json: bool,
) -> None:
    """Store logged request/response records from PATH (JSONL or JSONL.gz).

    Every valid line is stored once (re-ingesting is a no-op); every bad line is quarantined with its line number
    and reason (once, however often the file is ingested). Exits 0 when the file was read to its end, even with
    quarantined lines; 1 when reading stopped part-way (a truncated or corrupt gzip file), after storing and
    counting what came before; 2 when nothing could be ingested (no such file, not UTF-8 text).
    """
    from flywheel.pipeline.ingest import ingest_file
    from flywheel.store import open_store

    settings = settings_from(ctx)
    if (path is None) == (es_url is None):
        raise click.UsageError("Give either PATH or --from-elasticsearch URL.")
    engine = open_store(settings.database_url)
    try:
        if es_url is not None:
            from flywheel.pipeline.ingest.elasticsearch import ingest_elasticsearch

            report = ingest_elasticsearch(
                engine,
                es_url,
                es_index or settings.es_collection_name,
                workload_id=workload_id,
                client_id=client_id,
            )
        else:
            assert path is not None
            progress, update = _progress_bar(sys.stderr.isatty())
            if progress is not None:
                with progress:
                    report = ingest_file(
                        engine, path, workload_id=workload_id, client_id=client_id, on_progress=update
                    )
            else:
                report = ingest_file(engine, path, workload_id=workload_id, client_id=client_id)
    finally:
        engine.dispose()
    _print_report(report.as_dict(), as_json)
    if report.error:
        ctx.exit(1)
