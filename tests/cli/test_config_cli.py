"""`flywheel config check|show` and how every command finds (or does not find) its configuration file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from flywheel.cli.main import cli

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Why: flywheel looks for config/config.yaml in the working directory; run from one that has none."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    return work


def _invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_config_check_rejects_a_misspelt_backend_naming_the_key_and_the_known_backends(
    elsewhere: Path,
) -> None:
    path = _write(
        elsewhere / "c.yaml", "nims: [{model_name: a, backend: local}, {model_name: b, backend: lcoal}]\n"
    )
    result = _invoke("--config", path, "config", "check")
    assert result.exit_code == 2, result.output
    assert "nims[1].backend" in result.output and "'lcoal'" in result.output
    assert "local" in result.output and "openai" in result.output  # what it could have been
    assert "nims[0]" not in result.output
    assert "Traceback" not in result.output


def test_config_check_rejects_an_empty_file(elsewhere: Path) -> None:
    result = _invoke("--config", _write(elsewhere / "empty.yaml", "\n# nothing yet\n"), "config", "check")
    assert result.exit_code == 2, result.output
    assert "empty" in result.output and "empty.yaml" in result.output


def test_config_check_rejects_zero_candidates(elsewhere: Path) -> None:
    result = _invoke("--config", _write(elsewhere / "c.yaml", "nims: []\n"), "config", "check")
    assert result.exit_code == 2, result.output
    assert "nims:" in result.output and "no candidate" in result.output


def test_config_check_passes_the_shipped_config() -> None:
    result = _invoke("--config", str(REPO / "config" / "config.yaml"), "config", "check")
    assert result.exit_code == 0, result.output
    assert "1 candidate" in result.output


def test_config_check_without_a_config_file_names_the_path_looked_for(elsewhere: Path) -> None:
    result = _invoke("config", "check")
    assert result.exit_code == 2, result.output
    assert str(elsewhere / "config" / "config.yaml") in result.output
    assert "FLYWHEEL_CONFIG" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--workload-id", "w", "--client-id", "c"],
        ["datasets", "build", "--workload-id", "w", "--client-id", "c"],
        ["serve"],
        ["worker"],
    ],
)
def test_commands_that_need_the_config_refuse_to_run_on_built_in_defaults(
    elsewhere: Path, args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from flywheel.service.workers import _celery

    def started(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the command started instead of refusing")

    # Why: without the check these would serve / consume forever; make them fail fast instead.
    monkeypatch.setattr(uvicorn, "run", started)
    monkeypatch.setattr(_celery, "run_worker", started)
    result = _invoke(*args)
    assert result.exit_code == 2, result.output
    assert f"looked for {elsewhere / 'config' / 'config.yaml'}" in result.output
    assert "--config FILE" in result.output and "FLYWHEEL_CONFIG" in result.output
    assert not (elsewhere.parent / "home").exists()  # refused before anything was created


def test_help_works_without_a_config_file(elsewhere: Path) -> None:
    assert _invoke("run", "--help").exit_code == 0


def test_commands_that_need_no_config_still_work_without_one(elsewhere: Path) -> None:
    result = _invoke("jobs", "list")
    assert result.exit_code == 0, result.output
    assert "0 of 0 job(s)" in result.output


def test_flywheel_config_env_points_at_the_file(elsewhere: Path) -> None:
    path = _write(elsewhere / "c.yaml", "nims: [{model_name: a, backend: local}]\n")
    result = _invoke("config", "check", env={"FLYWHEEL_CONFIG": path})
    assert result.exit_code == 0, result.output


def test_a_non_utf8_config_file_is_a_message_not_a_traceback(elsewhere: Path) -> None:
    path = elsewhere / "latin1.yaml"
    path.write_bytes(b"nims: []\n# caf\xe9\n")
    result = _invoke("--config", str(path), "config", "check")
    assert result.exit_code == 2
    assert "not UTF-8" in result.output and "latin1.yaml" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_postgres_scheme_works_as_postgresql(elsewhere: Path) -> None:
    config = str(REPO / "config" / "config.yaml")
    env = {"FLYWHEEL_DATABASE_URL": "postgres://fly:pw-secret@db/flywheel"}
    result = _invoke("--config", config, "config", "show", env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["database_url"] == "postgresql://fly:***@db/flywheel"


def test_mysql_is_refused_with_what_is_supported(elsewhere: Path) -> None:
    config = str(REPO / "config" / "config.yaml")
    result = _invoke("--config", config, "jobs", "list", env={"FLYWHEEL_DATABASE_URL": "mysql://fly:pw@db/f"})
    assert result.exit_code == 2, result.output
    assert "mysql" in result.output and "postgresql://" in result.output and "sqlite:///" in result.output
    assert isinstance(result.exception, SystemExit)


def test_config_show_and_errors_hide_query_string_passwords(elsewhere: Path) -> None:
    path = _write(
        elsewhere / "c.yaml",
        "nims: [{model_name: a, backend: openai, base_url: 'https://llm.test/v1?api_key=key-secret'}]\n"
        "mlflow_config: {tracking_uri: 'https://user:ml-secret@mlflow.test'}\n",
    )
    env = {"FLYWHEEL_DATABASE_URL": "postgresql://fly@127.0.0.1:1/flywheel?password=pg-secret"}
    shown = _invoke("--config", path, "config", "show", env=env)
    assert shown.exit_code == 0, shown.output
    for secret in ("key-secret", "ml-secret", "pg-secret"):
        assert secret not in shown.output
    assert "password=***" in shown.output
    failed = _invoke("--config", path, "jobs", "list", env=env)  # nothing listens on port 1
    assert failed.exit_code == 2, failed.output
    assert "pg-secret" not in failed.output and "password=***" in failed.output


def test_scheme_less_database_url_error_hides_the_password(elsewhere: Path) -> None:
    config = str(REPO / "config" / "config.yaml")
    result = _invoke("--config", config, "jobs", "list", env={"FLYWHEEL_DATABASE_URL": "fly:pw-secret@db/f"})
    assert result.exit_code == 2, result.output
    assert "pw-secret" not in result.output and "fly:***@db/f" in result.output
