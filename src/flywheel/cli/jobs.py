"""``flywheel run`` (a job in the foreground) and ``flywheel jobs list|show|cancel|delete``."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from typing import Any

import click

from flywheel.cli._context import needs_config_file, remote_server, server_options, settings_from

#: The statuses a job can be in (flywheel.service.jobs ACTIVE | TERMINAL; not imported here to keep
#: ``flywheel --help`` fast).
JOB_STATUSES = ("pending", "running", "completed", "failed", "cancelled")


def _store(ctx: click.Context) -> tuple[Any, Any]:
    from flywheel.service.jobs import JobRepository
    from flywheel.store import open_store

    settings = settings_from(ctx)
    engine = open_store(settings.database_url)
    return settings, JobRepository(engine)


def _fmt_metric(entry: Any) -> str:
    from flywheel.pipeline.report import format_metric

    if not isinstance(entry, dict):
        return "–"
    text = format_metric(entry)
    return text if text == "not computed" else f"{text} n={entry.get('n')}"


def results_table(detail: dict[str, Any]) -> Any:
    """A rich table: one row per candidate × evaluation, scores with 95% intervals."""
    from rich.table import Table

    table = Table(title=f"flywheel run {detail['id']} — {detail['status']}")
    table.add_column("candidate")
    table.add_column("evaluation")
    table.add_column("metric")
    table.add_column("score [95% CI]")
    table.add_column("p50 latency s", justify="right")
    for nim in detail["nims"]:
        for ev in nim["evaluations"]:
            metrics = ev.get("metrics") or {}
            keys = list(ev.get("scores") or {}) or list(metrics)
            latency = (ev.get("usage") or {}).get("latency_p50_s") or {}
            lat = (
                f"{latency['value']:.2f}"
                if isinstance(latency, dict) and latency.get("value") is not None
                else "–"
            )
            if ev.get("error") or not keys:
                table.add_row(
                    nim["model_name"], ev["eval_type"], "–", ev.get("error") or ev.get("status", ""), lat
                )
                continue
            for i, key in enumerate(keys):
                table.add_row(
                    nim["model_name"] if i == 0 else "",
                    ev["eval_type"] if i == 0 else "",
                    key,
                    _fmt_metric(metrics.get(key)),
                    lat if i == 0 else "",
                )
        for cust in nim["customizations"]:
            table.add_row(
                nim["model_name"],
                "customization",
                "steps",
                f"{cust['steps_completed']} ({cust['status']})"
                + (f": {cust['error']}" if cust.get("error") else ""),
                "",
            )
    return table


@click.command()
@click.option("--workload-id", required=True, help="Workload whose logs are used.")
@click.option("--client-id", required=True, help="Client whose logs are used.")
@click.option("--candidate", "candidates", multiple=True, help="Run only this candidate (repeatable).")
@click.option("--eval-size", type=int, help="Override data_split_config.eval_size.")
@click.option("--json", "as_json", is_flag=True, help="Print the job detail as JSON at the end.")
@click.pass_context
@needs_config_file
def run(
    ctx: click.Context,
    workload_id: str,
    client_id: str,
    candidates: tuple[str, ...],
    eval_size: int | None,
    as_json: bool,
) -> None:
    """Run the flywheel for one workload in the foreground. Ctrl-C cancels cleanly (finished steps are kept)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from flywheel.service.jobs import JobRequest, JobRunner, default_backends, submit_job

    settings, repo = _store(ctx)
    request = JobRequest(
        workload_id=workload_id,
        client_id=client_id,
        candidates=list(candidates) or None,
        data_split_config={"eval_size": eval_size} if eval_size is not None else None,
    )
    job_id = submit_job(repo, settings.config, request)
    runner = JobRunner(
        repo,
        home=settings.home,
        backends=default_backends(settings),
        env=settings.env,
        worker_id=f"run@{socket.gethostname()}:{os.getpid()}",
        lease_s=settings.config.executor.lease_s,
    )
    # The main thread waits on this event, never on Thread.is_alive(): a KeyboardInterrupt inside Thread.join()
    # can leave a live thread reported as finished (Python 3.11), and the process would exit mid-cancel.
    finished = threading.Event()

    def work() -> None:
        try:
            runner.run(job_id)
        finally:
            finished.set()

    thread = threading.Thread(target=work, name="flywheel-run", daemon=True)
    console = Console(stderr=True)
    console.print(f"job {job_id}: {workload_id} / {client_id}")
    thread.start()
    with Progress(
        TextColumn("{task.description:<40}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}% {task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        disable=as_json or not console.is_terminal,
    ) as progress:
        tasks: dict[str, Any] = {}

        def wait() -> None:
            while not finished.wait(0.5):
                _update_progress(progress, tasks, repo.detail(job_id))

        try:
            wait()
        except KeyboardInterrupt:
            console.print("cancelling… (finished steps are kept; Ctrl-C again to stop at once)")
            _cancel_quietly(repo, job_id)
            try:
                wait()
            except KeyboardInterrupt:
                # Stop now: the job ends cancelled here, whatever the worker thread was doing.
                repo.end_job(job_id, "cancelled", "Job cancelled by user (stopped at once).")
                console.print(f"job {job_id} cancelled")
                raise SystemExit(130) from None
        _update_progress(progress, tasks, repo.detail(job_id))
    from flywheel.service.jobs import job_report

    detail = repo.detail(job_id)
    report = job_report(repo.engine, job_id)
    repo.engine.dispose()
    if as_json:
        click.echo(json.dumps({**detail, "report": report}, indent=2))
    else:
        print_report(report)
        if detail.get("error"):
            click.echo(f"error: {detail['error']}", err=True)
    if detail["status"] != "completed":
        ctx.exit(1)


def print_report(report: dict[str, Any], fmt: str = "text") -> None:
    """Print a report as ``json``, ``markdown`` (plain text) or ``text`` (the Markdown rendered for a terminal)."""
    from flywheel.pipeline.report import render_markdown

    if fmt == "json":
        click.echo(json.dumps(report, indent=2))
        return
    markdown = render_markdown(report)
    if fmt == "markdown":
        click.echo(markdown, nl=False)
        return
    from rich.console import Console
    from rich.markdown import Markdown

    out = Console()
    if not out.is_terminal:
        out = Console(width=160)  # a log file or pipe: don't squeeze the tables into 80 columns
    out.print(Markdown(markdown))


def _cancel_quietly(repo: Any, job_id: str) -> None:
    from flywheel.errors import ConflictError

    with contextlib.suppress(ConflictError):  # it finished in the meantime
        repo.request_cancel(job_id)


def _update_progress(progress: Any, tasks: dict[str, Any], detail: dict[str, Any]) -> None:
    for step in detail.get("steps", []):
        if step["kind"] == "finalize":
            continue
        if step["name"] not in tasks:
            tasks[step["name"]] = progress.add_task(step["name"], total=100, status=step["status"])
        progress.update(tasks[step["name"]], completed=step["progress"], status=step["status"])


class _RemoteJobs:
    """The same operations as the local store, through a flywheel server's HTTP API (:class:`flywheel.Client`)."""

    def __init__(self, url: str, api_key: str | None) -> None:
        from flywheel.client import Client

        self._client = Client(url, api_key=api_key)

    def list_jobs(self, **filters: Any) -> tuple[list[dict[str, Any]], int]:
        page = self._client.list_jobs(**filters)
        return [dict(job) for job in page["jobs"]], page["total"]

    def detail(self, job_id: str) -> dict[str, Any]:
        return dict(self._client.get_job(job_id))

    def request_cancel(self, job_id: str) -> str:
        return self._client.cancel_job(job_id)["message"]

    def remove(self, job_id: str) -> None:
        self._client.delete_job(job_id)

    def report(self, job_id: str) -> dict[str, Any]:
        return dict(self._client.report(job_id))


class _LocalJobs:
    def __init__(self, ctx: click.Context) -> None:
        self.settings, self.repo = _store(ctx)

    def list_jobs(self, **filters: Any) -> tuple[list[dict[str, Any]], int]:
        return self.repo.list_jobs(**filters)  # type: ignore[no-any-return]

    def detail(self, job_id: str) -> dict[str, Any]:
        return self.repo.detail(job_id)  # type: ignore[no-any-return]

    def request_cancel(self, job_id: str) -> str:
        return self.repo.request_cancel(job_id)  # type: ignore[no-any-return]

    def remove(self, job_id: str) -> None:
        from flywheel.service.jobs import remove_job

        remove_job(self.repo, self.settings.home, job_id)

    def report(self, job_id: str) -> dict[str, Any]:
        from flywheel.service.jobs import job_report

        return job_report(self.repo.engine, job_id)


def _jobs_backend(ctx: click.Context) -> _RemoteJobs | _LocalJobs:
    server, api_key = remote_server(ctx)
    if server:
        return _RemoteJobs(server, api_key)
    return _LocalJobs(ctx)


def _utc(iso: str | None) -> str:
    """A job time for people: the API's naive-UTC ISO text as ``2025-01-31 12:00:00Z``; ``–`` when unset."""
    from datetime import UTC, datetime

    if not iso:
        return "–"
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M:%SZ")


@click.group()
@server_options(from_env=True)
def jobs() -> None:
    """List, inspect, cancel and delete flywheel runs (in the local store, or on a server with --server)."""


@jobs.command("list")
@server_options(from_env=False)
@click.option("--workload-id", help="Only this workload.")
@click.option("--status", type=click.Choice(JOB_STATUSES), help="Only jobs in this status.")
@click.option("--limit", default=20, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def jobs_list(
    ctx: click.Context, workload_id: str | None, status: str | None, limit: int, as_json: bool
) -> None:
    """Jobs, newest first."""
    page, total = _jobs_backend(ctx).list_jobs(
        workload_id=workload_id, status=status, order="desc", limit=limit
    )
    if as_json:
        click.echo(json.dumps({"jobs": page, "total": total}, indent=2))
        return
    for job in page:
        click.echo(
            f"{job['id']}  {job['status']:<10} {job['workload_id']}/{job['client_id']}  {_utc(job['started_at'])}"
        )
    click.echo(f"{len(page)} of {total} job(s)")


@jobs.command("show")
@server_options(from_env=False)
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def jobs_show(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """One job in detail."""
    from rich.console import Console

    detail = _jobs_backend(ctx).detail(job_id)
    if as_json:
        click.echo(json.dumps(detail, indent=2))
    else:
        Console().print(results_table(detail))


@jobs.command("cancel")
@server_options(from_env=False)
@click.argument("job_id")
@click.pass_context
def jobs_cancel(ctx: click.Context, job_id: str) -> None:
    """Ask a running job to stop (its worker stops between training steps / evaluation batches)."""
    click.echo(_jobs_backend(ctx).request_cancel(job_id))


@jobs.command("delete")
@server_options(from_env=False)
@click.argument("job_id")
@click.pass_context
def jobs_delete(ctx: click.Context, job_id: str) -> None:
    """Delete a finished job with its datasets, adapters and tracking entries."""
    _jobs_backend(ctx).remove(job_id)
    click.echo(f"Job {job_id} deleted.")


@click.command("report")
@click.argument("job_id")
@click.option("--json", "fmt", flag_value="json", help="The report as JSON (the API's shape).")
@click.option("--markdown", "fmt", flag_value="markdown", help="The report as Markdown.")
@server_options(from_env=True)
@click.pass_context
def report(ctx: click.Context, job_id: str, fmt: str | None) -> None:
    """What a run found: scores with 95% intervals, latency, tokens, cost per 1M requests against the teacher, and
    which candidate (if any) can replace it."""
    print_report(_jobs_backend(ctx).report(job_id), fmt or "text")
