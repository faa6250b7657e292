"""`flywheel datasets build --since/--until`: the time window is checked before anything is read."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from flywheel.cli.main import cli
from flywheel.config import Settings
from scripted_jobs import job_config

BUILD = ["datasets", "build", "--workload-id", "w", "--client-id", "c"]


@pytest.fixture
def settings(sqlite_url: str, home: Path) -> Settings:
    return Settings.from_env(
        job_config(), None, {"FLYWHEEL_DATABASE_URL": sqlite_url, "FLYWHEEL_HOME": str(home)}
    )


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf"])
def test_a_non_finite_since_is_rejected_naming_the_option(settings: Settings, value: str) -> None:
    result = CliRunner().invoke(cli, [*BUILD, "--since", value], obj=settings)
    assert result.exit_code == 2, result.output
    assert "--since" in result.output and "finite" in result.output


def test_since_after_until_is_rejected_naming_both(settings: Settings) -> None:
    result = CliRunner().invoke(
        cli, [*BUILD, "--since", "2025-02-01T00:00:00Z", "--until", "2025-01-01"], obj=settings
    )
    assert result.exit_code == 2, result.output
    assert "--until" in result.output and "since" in result.output
    assert "No records" not in result.output  # refused before reading the store
