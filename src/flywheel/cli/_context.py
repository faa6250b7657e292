"""Shared helpers of the CLI commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import click

F = TypeVar("F", bound=Callable[..., Any])


def settings_from(ctx: click.Context) -> Any:
    """The :class:`flywheel.config.Settings` of this invocation (loaded once by the root command)."""
    return ctx.find_root().obj


def needs_config_file(command: F) -> F:
    """Decorate a command whose result depends on the configuration file: when none was found it stops with a
    message naming the file looked for, instead of running on built-in defaults without candidates.

    Put it directly above the ``def`` (below ``@click.pass_context``); it runs after the arguments are parsed, so
    ``--help`` works without a configuration.
    """

    @functools.wraps(command)
    def checked(*args: Any, **kwargs: Any) -> Any:
        settings_from(click.get_current_context()).require_config_file()
        return command(*args, **kwargs)

    return cast(F, checked)


def _remember(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    # ctx.meta is shared by a command and its parent group, so the subcommand's value wins over the group's.
    if value is not None:
        ctx.meta[f"flywheel.{param.name}"] = value
    return value


def server_options(*, from_env: bool) -> Callable[[F], F]:
    """``--server URL`` and ``--api-key KEY`` for a command that can work through a flywheel server.

    Put them on a group *and* on its subcommands (``jobs --server URL list`` and ``jobs list --server URL`` both
    work); read them with :func:`remote_server`. ``from_env`` reads ``FLYWHEEL_SERVER`` / ``FLYWHEEL_API_KEY``: give
    it to the outermost command only, so the environment never overrides a group option given on the command line.
    """

    def decorate(command: F) -> F:
        command = click.option(
            "--api-key",
            envvar="FLYWHEEL_API_KEY" if from_env else None,
            expose_value=False,
            callback=_remember,
            help="API key for --server (default: $FLYWHEEL_API_KEY).",
        )(command)
        return click.option(
            "--server",
            envvar="FLYWHEEL_SERVER" if from_env else None,
            expose_value=False,
            callback=_remember,
            help="A flywheel server URL (default: $FLYWHEEL_SERVER, else the local store).",
        )(command)

    return decorate


def remote_server(ctx: click.Context) -> tuple[str | None, str | None]:
    """The ``(server URL, API key)`` given with :func:`server_options` (``None`` URL: use the local store)."""
    return ctx.meta.get("flywheel.server"), ctx.meta.get("flywheel.api_key")
