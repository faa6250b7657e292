"""``flywheel quarantine list|show``: the lines and items ingestion rejected, with the reason for each."""

from __future__ import annotations

import json
from typing import Any

import click

from flywheel.cli._context import remote_server, server_options, settings_from


class _LocalQuarantine:
    def __init__(self, ctx: click.Context) -> None:
        from flywheel.store import open_store

        self.engine = open_store(settings_from(ctx).database_url)

    def page(self, **filters: Any) -> tuple[list[dict[str, Any]], int]:
        from flywheel.store import list_quarantined

        page, total = list_quarantined(self.engine, **filters)
        return [r.as_dict() for r in page], total

    def record(self, record_id: int) -> dict[str, Any]:
        from flywheel.store import quarantined_record

        return quarantined_record(self.engine, record_id).as_dict()


class _RemoteQuarantine:
    """The same reads through a flywheel server's ``/api/quarantine`` (:class:`flywheel.Client`)."""

    def __init__(self, url: str, api_key: str | None) -> None:
        from flywheel.client import Client

        self._client = Client(url, api_key=api_key)

    def page(self, **filters: Any) -> tuple[list[dict[str, Any]], int]:
        page = self._client.list_quarantine(**filters)
        return [dict(record) for record in page["records"]], page["total"]

    def record(self, record_id: int) -> dict[str, Any]:
        return dict(self._client.get_quarantined(record_id))


def _backend(ctx: click.Context) -> _LocalQuarantine | _RemoteQuarantine:
    server, api_key = remote_server(ctx)
    if server:
        return _RemoteQuarantine(server, api_key)
    return _LocalQuarantine(ctx)


@click.group()
@server_options(from_env=True)
def quarantine() -> None:
    """Input that ingestion rejected, with the reason (in the local store, or on a server with --server)."""


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@quarantine.command("list")
@server_options(from_env=False)
@click.option("--source", help="Only from this source: api, or file:PATH as the ingestion reported it.")
@click.option("--ingestion-id", help="Only from this ingestion (the id `flywheel ingest --json` printed).")
@click.option("--reason", help="Only with this reason, e.g. 'invalid timestamp'.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 500))
@click.option("--offset", default=0, show_default=True, type=click.IntRange(0, 2**31 - 1))
@click.option("--json", "as_json", is_flag=True, help="The page as JSON (the API's shape).")
@click.pass_context
def quarantine_list(
    ctx: click.Context,
    source: str | None,
    ingestion_id: str | None,
    reason: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """Rejected lines and items, newest first."""
    page, total = _backend(ctx).page(
        source=source, ingestion_id=ingestion_id, reason=reason, limit=limit, offset=offset
    )
    if as_json:
        click.echo(json.dumps({"records": page, "total": total, "limit": limit, "offset": offset}, indent=2))
        return
    for rec in page:
        where = rec["source"] + (f":{rec['line_number']}" if rec["line_number"] is not None else "")
        click.echo(f"{rec['id']:>8}  {rec['created_at']}  {where}  {_one_line(rec['reason'], 80)}")
    click.echo(f"{len(page)} of {total} quarantined record(s)")


@quarantine.command("show")
@server_options(from_env=False)
@click.argument("record_id", type=click.IntRange(1, 2**31 - 1))
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def quarantine_show(ctx: click.Context, record_id: int, as_json: bool) -> None:
    """One rejected line or item: where it came from, why, and the raw text."""
    rec = _backend(ctx).record(record_id)
    if as_json:
        click.echo(json.dumps(rec, indent=2))
        return
    for key in ("id", "created_at", "source", "line_number", "ingestion_id", "reason"):
        click.echo(f"{key + ':':<14}{rec[key] if rec[key] is not None else '–'}")
    click.echo("raw:")
    click.echo(rec["raw"])
