"""Shared helpers of the CLI commands."""

from __future__ import annotations

from typing import Any

import click


def settings_from(ctx: click.Context) -> Any:
    """The :class:`flywheel.config.Settings` of this invocation (loaded once by the root command)."""
    return ctx.find_root().obj
