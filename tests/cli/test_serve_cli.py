"""`flywheel serve` refuses to expose an unauthenticated API to the network."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from flywheel.cli.main import cli
from flywheel.cli.serve import is_loopback
from flywheel.config import FlywheelConfig, Settings


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Why: record what uvicorn would have been asked to bind instead of serving forever."""
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    return calls


def _settings(tmp_path: Any, **env: str) -> Settings:
    return Settings.from_env(FlywheelConfig(), None, {"FLYWHEEL_HOME": str(tmp_path), **env})


@pytest.mark.parametrize("host", ["", " ", "0.0.0.0", "::", "192.168.1.20", "example.com"])
def test_an_address_reachable_from_the_network_needs_api_keys(
    host: str, started: list[dict[str, Any]], tmp_path: Any
) -> None:
    result = CliRunner().invoke(cli, ["serve", "--host", host], obj=_settings(tmp_path))
    assert result.exit_code == 2, result.output
    assert "FLYWHEEL_API_KEYS" in result.output and "--insecure" in result.output
    assert started == []


def test_the_empty_host_is_named_as_all_interfaces(started: list[dict[str, Any]], tmp_path: Any) -> None:
    result = CliRunner().invoke(cli, ["serve", "--host", ""], obj=_settings(tmp_path))
    assert "all interfaces" in result.output


@pytest.mark.parametrize("host", ["", "0.0.0.0"])
def test_all_interfaces_with_keys_or_insecure_is_allowed(
    host: str, started: list[dict[str, Any]], tmp_path: Any
) -> None:
    with_keys = CliRunner().invoke(
        cli, ["serve", "--host", host], obj=_settings(tmp_path, FLYWHEEL_API_KEYS="k")
    )
    assert with_keys.exit_code == 0, with_keys.output
    insecure = CliRunner().invoke(cli, ["serve", "--host", host, "--insecure"], obj=_settings(tmp_path))
    assert insecure.exit_code == 0, insecure.output
    assert [c["host"] for c in started] == [host, host]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_keys(host: str, started: list[dict[str, Any]], tmp_path: Any) -> None:
    result = CliRunner().invoke(cli, ["serve", "--host", host], obj=_settings(tmp_path))
    assert result.exit_code == 0, result.output
    assert started[0]["host"] == host


def test_the_empty_host_is_not_loopback() -> None:
    assert not is_loopback("")
    assert is_loopback("LOCALHOST")
