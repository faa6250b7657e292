"""Settings from the environment: where the config file comes from, and which database URLs are accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.config import Settings, load_config_file
from flywheel.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "config.yaml"


def test_postgres_scheme_is_accepted_as_postgresql() -> None:
    settings = Settings.load(CONFIG, env={"FLYWHEEL_DATABASE_URL": "postgres://fly:pw@db:5432/flywheel"})
    assert settings.database_url == "postgresql://fly:pw@db:5432/flywheel"


@pytest.mark.parametrize(
    "url",
    ["sqlite:///x.db", "sqlite://", "postgresql://db/f", "postgresql+psycopg://db/f"],
)
def test_supported_database_urls_are_kept(url: str) -> None:
    assert Settings.load(CONFIG, env={"FLYWHEEL_DATABASE_URL": url}).database_url == url


@pytest.mark.parametrize(
    "url", ["mysql://fly:pw-secret@db/flywheel", "mysql+pymysql://db/f", "postgresql+asyncpg://db/f"]
)
def test_unsupported_database_is_a_config_error_naming_what_is_supported(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load(CONFIG, env={"FLYWHEEL_DATABASE_URL": url})
    message = str(info.value)
    assert "FLYWHEEL_DATABASE_URL" in message and "not supported" in message
    assert "sqlite:///" in message and "postgresql://" in message
    assert "pw-secret" not in message


def test_database_url_without_scheme_is_a_config_error_without_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load(CONFIG, env={"FLYWHEEL_DATABASE_URL": "fly:pw-secret@db/flywheel"})
    assert "pw-secret" not in str(info.value)
    assert "fly:***@db/flywheel" in str(info.value)


def test_database_url_query_password_is_redacted_for_messages() -> None:
    settings = Settings.load(
        CONFIG, env={"FLYWHEEL_DATABASE_URL": "postgresql://fly@db/flywheel?password=pw-secret"}
    )
    assert "pw-secret" not in settings.redacted_database_url()


def test_non_utf8_config_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("nims: []\n# café\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"not UTF-8.*line 2"):
        load_config_file(path)


def test_config_path_that_is_a_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config_file(tmp_path)


def test_without_a_config_file_settings_say_which_file_was_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.load(env={})
    assert settings.config_path is None
    assert settings.missing_config == tmp_path / "config" / "config.yaml"
    with pytest.raises(ConfigError) as info:
        settings.require_config_file()
    message = str(info.value)
    assert str(tmp_path / "config" / "config.yaml") in message
    assert "--config" in message and "FLYWHEEL_CONFIG" in message


def test_a_found_or_given_config_is_not_missing(tmp_path: Path) -> None:
    settings = Settings.load(CONFIG, env={})
    assert settings.missing_config is None
    settings.require_config_file()  # no error
