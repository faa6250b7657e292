"""The ``flywheel`` command line.

Errors flywheel raises on purpose (:class:`flywheel.errors.FlywheelError`) are printed as one message without a
traceback and exit with status 2. Heavy modules are imported inside the commands that need them, so
``flywheel --help`` stays fast and works without torch.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from flywheel import __version__
from flywheel.errors import FlywheelError


class _Group(click.Group):
    """A click group that turns FlywheelError into a clean message and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FlywheelError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flywheel")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="FLYWHEEL_CONFIG",
    help="Configuration file (default: $FLYWHEEL_CONFIG, else config/config.yaml).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """flywheel: prove that a smaller model can replace the big one, from your production logs."""
    if ctx.obj is None:  # tests pass their own Settings as obj
        from flywheel.config import Settings

        ctx.obj = Settings.load(config_path)


def _register() -> None:
    from flywheel.cli import config_cmd, datasets, export, ingest, jobs, quarantine, score, serve, worker

    for command in (
        ingest.ingest,
        quarantine.quarantine,
        datasets.datasets,
        datasets.demo_data,
        jobs.run,
        jobs.jobs,
        jobs.report,
        export.export,
        serve.serve,
        worker.worker,
        score.score,
        config_cmd.config,
        config_cmd.db,
    ):
        cli.add_command(command)


_register()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="flywheel")


if __name__ == "__main__":
    main()
