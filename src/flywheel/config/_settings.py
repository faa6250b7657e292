"""Settings: the configuration file plus the environment, resolved once at the edge.

Nothing here is a module-level singleton: ``Settings.load()`` builds a fresh object, and the app, CLI and workers pass
it down. Library functions take plain arguments, not this object.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from flywheel.config._load import load_config_file
from flywheel.config._models import FlywheelConfig

#: Where the shipped default configuration lives, relative to the repository root / working directory.
DEFAULT_CONFIG_PATH = Path("config/config.yaml")


def _secret(env: Mapping[str, str], *names: str) -> SecretStr | None:
    for name in names:
        value = env.get(name)
        if value:
            return SecretStr(value)
    return None


@dataclass(frozen=True)
class Settings:
    """Everything a flywheel process needs to know, from the config file and the environment.

    Secrets are :class:`pydantic.SecretStr`, whose ``str``/``repr`` print ``**********``.
    """

    config: FlywheelConfig
    config_path: Path | None
    home: Path
    # URLs may carry passwords: kept out of repr (use redacted_database_url() in messages).
    database_url: str = field(repr=False)
    redis_url: str = field(repr=False)
    elasticsearch_url: str = field(repr=False)
    es_collection_name: str = "flywheel"
    nvidia_api_key: SecretStr | None = None
    llm_judge_api_key: SecretStr | None = None
    emb_api_key: SecretStr | None = None
    hf_token: SecretStr | None = None
    api_keys: tuple[SecretStr, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def load(
        cls,
        config_path: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Settings:
        """Read the configuration file and the environment.

        The file is ``config_path`` if given, else ``$FLYWHEEL_CONFIG``, else ``config/config.yaml`` when it exists,
        else built-in defaults.
        """
        env = dict(os.environ if env is None else env)
        path: Path | None
        if config_path is not None:
            path = Path(config_path)
        elif env.get("FLYWHEEL_CONFIG"):
            path = Path(env["FLYWHEEL_CONFIG"])
        elif DEFAULT_CONFIG_PATH.is_file():
            path = DEFAULT_CONFIG_PATH
        else:
            path = None
        config = load_config_file(path) if path is not None else FlywheelConfig()
        if config.mlflow_config.enabled is None:
            profiles = [p.strip() for p in env.get("COMPOSE_PROFILES", "").split(",")]
            config.mlflow_config.enabled = "mlflow" in profiles
        return cls.from_env(config, path, env)

    @classmethod
    def from_env(cls, config: FlywheelConfig, config_path: Path | None, env: Mapping[str, str]) -> Settings:
        home = Path(env.get("FLYWHEEL_HOME") or ".flywheel").expanduser()
        database_url = env.get("FLYWHEEL_DATABASE_URL") or f"sqlite:///{(home / 'flywheel.db').as_posix()}"
        keys = tuple(SecretStr(k.strip()) for k in env.get("FLYWHEEL_API_KEYS", "").split(",") if k.strip())
        return cls(
            config=config,
            config_path=config_path,
            home=home,
            database_url=database_url,
            redis_url=env.get("REDIS_URL") or "redis://localhost:6379/0",
            elasticsearch_url=env.get("ELASTICSEARCH_URL") or "http://localhost:9200",
            es_collection_name=env.get("ES_COLLECTION_NAME") or "flywheel",
            nvidia_api_key=_secret(env, "NVIDIA_API_KEY"),
            llm_judge_api_key=_secret(env, "LLM_JUDGE_API_KEY", "NVIDIA_API_KEY"),
            emb_api_key=_secret(env, "EMB_API_KEY", "NVIDIA_API_KEY"),
            hf_token=_secret(env, "HF_TOKEN"),
            api_keys=keys,
            env=env,
        )

    def secret_from_env(self, name: str | None, *fallbacks: str) -> SecretStr | None:
        """The secret in env var ``name`` (if given), else the first fallback that is set."""
        names = ((name,) if name else ()) + fallbacks
        return _secret(self.env, *names)

    def redacted_database_url(self) -> str:
        """The database URL with any password replaced, for logs and messages."""
        return redact_url(self.database_url)


def redact_url(url: str) -> str:
    """Hide the password of ``scheme://user:password@host/…`` URLs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL: redact anything between ':' and '@' after the scheme
        scheme, sep, rest = url.partition("://")
        if "@" in rest:
            creds, _, host = rest.rpartition("@")
            user = creds.split(":", 1)[0]
            return f"{scheme}{sep}{user}:***@{host}"
        return url
