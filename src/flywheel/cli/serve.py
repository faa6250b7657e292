"""``flywheel serve``: the HTTP API (and, with the embedded default, its in-process job worker)."""

from __future__ import annotations

import ipaddress

import click

from flywheel.cli._context import needs_config_file, settings_from


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` is reachable from this machine only.

    The empty host (like ``0.0.0.0`` and ``::``) binds every interface, so it is *not* loopback; a name other than
    ``localhost`` may resolve to anything and is treated as reachable from the network.
    """
    host = host.strip().lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to bind.")
@click.option("--insecure", is_flag=True, help="Allow a non-loopback address without FLYWHEEL_API_KEYS.")
@click.pass_context
@needs_config_file
def serve(ctx: click.Context, host: str, port: int, insecure: bool) -> None:
    """Run the API server."""
    settings = settings_from(ctx)
    if not is_loopback(host) and not settings.api_keys and not insecure:
        where = f"all interfaces (--host {host!r})" if host.strip() in ("", "0.0.0.0", "::") else repr(host)
        raise click.UsageError(
            f"Refusing to serve on {where} without authentication: set FLYWHEEL_API_KEYS=key1,key2 "
            "or pass --insecure to accept unauthenticated requests from the network."
        )
    import uvicorn

    from flywheel.service.api import create_app

    uvicorn.run(
        create_app(settings), host=host, port=port, log_level=settings.config.logging_config.level.lower()
    )
