"""``flywheel config`` and ``flywheel db``: inspect configuration and manage the store's schema."""

from __future__ import annotations

import json

import click

from flywheel.cli._context import settings_from


@click.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("check")
@click.pass_context
def config_check(ctx: click.Context) -> None:
    """Validate the configuration file and environment, and that the file can run a job: at least one candidate,
    each on a known backend (exit 2 listing every problem)."""
    from flywheel.backends.registry import backend_names
    from flywheel.config import format_problems, runnable_problems
    from flywheel.errors import ConfigError

    settings = settings_from(ctx)
    settings.require_config_file()
    problems = runnable_problems(settings.config, backend_names())
    if problems:
        raise ConfigError(
            format_problems(f"Configuration {str(settings.config_path)!r} cannot run", problems), problems
        )
    source = str(settings.config_path) if settings.config_path else "settings passed in"
    click.echo(f"Configuration OK ({source}); {len(settings.config.nims)} candidate(s).")


@config.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print the effective configuration as JSON (secrets are never included: URLs are shown redacted)."""
    from flywheel.config import redacted_config

    settings = settings_from(ctx)
    out = {
        "config_path": str(settings.config_path) if settings.config_path else None,
        "missing_config": str(settings.missing_config) if settings.missing_config else None,
        "home": str(settings.home),
        "database_url": settings.redacted_database_url(),
        "config": redacted_config(settings.config),
    }
    click.echo(json.dumps(out, indent=2))


@click.group()
def db() -> None:
    """Manage the store's schema."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply all migrations to the database (FLYWHEEL_DATABASE_URL)."""
    from flywheel.store import connect, current_revision, migrate

    settings = settings_from(ctx)
    engine = connect(settings.database_url)
    migrate(engine)
    click.echo(f"{settings.redacted_database_url()} is at revision {current_revision(engine)}.")
