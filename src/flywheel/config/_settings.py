"""Settings: the configuration file plus the environment, resolved once at the edge.

Nothing here is a module-level singleton: ``Settings.load()`` builds a fresh object, and the app, CLI and workers pass
it down. Library functions take plain arguments, not this object.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from pydantic import SecretStr

from flywheel.config._load import load_config_file
from flywheel.config._models import FlywheelConfig
from flywheel.errors import ConfigError

#: Where the shipped default configuration lives, relative to the repository root / working directory.
DEFAULT_CONFIG_PATH = Path("config/config.yaml")


def _secret(env: Mapping[str, str], *names: str) -> SecretStr | None:
    for name in names:
        value = env.get(name)
        if value:
            return SecretStr(value)
    return None


#: ``NAME:KEY`` in ``FLYWHEEL_API_KEYS`` names a key; the name is what the gateway logs as the caller's client_id.
_KEY_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,63}):(.+)$")


@dataclass(frozen=True)
class ApiKey:
    """One of flywheel's own API keys (``FLYWHEEL_API_KEYS``), with the name it was given, if any."""

    secret: SecretStr
    name: str | None = None


def parse_api_keys(value: str) -> tuple[ApiKey, ...]:
    """``FLYWHEEL_API_KEYS``: comma-separated keys, each ``KEY`` or ``NAME:KEY`` (NAME: letters, digits, ``_.-``,
    at most 64 characters). A key that itself holds ``NAME:`` at its start must be written with a name."""
    keys = []
    for entry in value.split(","):
        entry = entry.strip()
        if not entry:
            continue
        named = _KEY_NAME.match(entry)
        keys.append(ApiKey(SecretStr(named.group(2)), named.group(1)) if named else ApiKey(SecretStr(entry)))
    return tuple(keys)


def parse_cpu_threads(value: str | None) -> int | None:
    """``FLYWHEEL_CPU_THREADS``: the CPU threads the local engine may use in this process, a positive integer;
    None when unset or empty (the engine then uses every core this process may run on). Raises
    :class:`ConfigError` naming the variable for anything else."""
    if value is None or not value.strip():
        return None
    try:
        threads = int(value.strip())
    except ValueError:
        threads = 0
    if threads < 1:
        raise ConfigError(
            f"FLYWHEEL_CPU_THREADS={value!r} is not a positive whole number of CPU threads; set it to e.g. 2, or "
            "unset it to use every core this process may run on.",
            [("FLYWHEEL_CPU_THREADS", f"not a positive integer: {value!r}")],
        )
    return threads


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
    api_keys: tuple[ApiKey, ...] = ()
    #: ``FLYWHEEL_CPU_THREADS``: the local engine's CPU threads per process (None: the cores it may use).
    cpu_threads: int | None = None
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: The default file that was looked for and not found (no ``--config``, no ``FLYWHEEL_CONFIG``); the config is
    #: then the built-in defaults, without candidates. None when a file was given or found.
    missing_config: Path | None = None

    @classmethod
    def load(
        cls,
        config_path: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Settings:
        """Read the configuration file and the environment.

        The file is ``config_path`` if given, else ``$FLYWHEEL_CONFIG``, else ``config/config.yaml`` when it exists,
        else built-in defaults — which have no candidates, so :attr:`missing_config` records the file looked for and
        the commands that need a configuration call :meth:`require_config_file`.
        """
        env = dict(os.environ if env is None else env)
        path: Path | None
        missing: Path | None = None
        if config_path is not None:
            path = Path(config_path)
        elif env.get("FLYWHEEL_CONFIG"):
            path = Path(env["FLYWHEEL_CONFIG"])
        elif DEFAULT_CONFIG_PATH.is_file():
            path = DEFAULT_CONFIG_PATH
        else:
            path, missing = None, Path.cwd() / DEFAULT_CONFIG_PATH
        config = load_config_file(path) if path is not None else FlywheelConfig()
        if config.mlflow_config.enabled is None:
            profiles = [p.strip() for p in env.get("COMPOSE_PROFILES", "").split(",")]
            config.mlflow_config.enabled = "mlflow" in profiles
        return cls.from_env(config, path, env, missing_config=missing)

    @classmethod
    def from_env(
        cls,
        config: FlywheelConfig,
        config_path: Path | None,
        env: Mapping[str, str],
        *,
        missing_config: Path | None = None,
    ) -> Settings:
        home = Path(env.get("FLYWHEEL_HOME") or ".flywheel").expanduser()
        database_url = normalize_database_url(
            env.get("FLYWHEEL_DATABASE_URL") or f"sqlite:///{(home / 'flywheel.db').as_posix()}"
        )
        keys = parse_api_keys(env.get("FLYWHEEL_API_KEYS", ""))
        cpu_threads = parse_cpu_threads(env.get("FLYWHEEL_CPU_THREADS"))
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
            cpu_threads=cpu_threads,
            env=env,
            missing_config=missing_config,
        )

    def require_config_file(self) -> None:
        """Raise :class:`ConfigError` when no configuration file was found, naming the file looked for.

        Commands whose result depends on the configuration (``run``, ``serve``, ``worker``, ``datasets build``)
        call this rather than run on built-in defaults without candidates.
        """
        if self.missing_config is not None:
            raise ConfigError(
                f"No configuration file: looked for {self.missing_config} (the default when neither --config nor "
                "FLYWHEEL_CONFIG is given). Pass --config FILE, set FLYWHEEL_CONFIG=FILE, or run from the directory "
                "that holds config/config.yaml.",
                [("config", f"not found: {self.missing_config}")],
            )

    def secret_from_env(self, name: str | None, *fallbacks: str) -> SecretStr | None:
        """The secret in env var ``name`` (if given), else the first fallback that is set."""
        names = ((name,) if name else ()) + fallbacks
        return _secret(self.env, *names)

    def redacted_database_url(self) -> str:
        """The database URL with any password replaced, for logs and messages."""
        return redact_url(self.database_url)


#: What FLYWHEEL_DATABASE_URL may be, for messages.
SUPPORTED_DATABASES = "sqlite:///PATH or postgresql://USER[:PASSWORD]@HOST[:PORT]/DB"
#: Dialect → the drivers flywheel ships with ("" is SQLAlchemy's default driver of the dialect).
_DATABASE_DRIVERS = {"sqlite": ("", "pysqlite"), "postgresql": ("", "psycopg")}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


def normalize_database_url(url: str) -> str:
    """Check a store URL and return it as SQLAlchemy expects it (``postgres://`` → ``postgresql://``).

    Raises :class:`ConfigError` (with the URL's secrets hidden) for a URL without a scheme or a database flywheel
    does not support.
    """
    match = _SCHEME.match(url)
    if match is None:
        raise ConfigError(
            f"FLYWHEEL_DATABASE_URL {redact_url(url)!r} is not a database URL (no scheme such as sqlite:// or "
            f"postgresql://); use {SUPPORTED_DATABASES}.",
            [("FLYWHEEL_DATABASE_URL", "no scheme")],
        )
    scheme = match.group(1).lower()
    dialect, _, driver = scheme.partition("+")
    if dialect == "postgres":  # Heroku-style and libpq-style alias; SQLAlchemy only knows "postgresql"
        dialect = "postgresql"
    if driver not in _DATABASE_DRIVERS.get(dialect, ()):
        raise ConfigError(
            f"FLYWHEEL_DATABASE_URL {redact_url(url)!r}: {scheme} is not supported. flywheel stores its data in "
            f"SQLite or PostgreSQL (through psycopg 3); use {SUPPORTED_DATABASES}.",
            [("FLYWHEEL_DATABASE_URL", f"unsupported database {scheme!r}")],
        )
    return f"{dialect}{'+' + driver if driver else ''}{url[match.end(1) :]}"


#: Query-string / fragment keys whose values are secrets (compared lower-case, '-' read as '_').
_SECRET_KEYS = frozenset({"pass", "pwd", "key", "auth", "sig", "code", "jwt", "session", "sessionid"})
_SECRET_PARTS = ("password", "passwd", "secret", "token", "apikey", "api_key", "credential", "signature")
_PARAM = re.compile(r"([?&;#])([^=&;#?]*)=([^&;#]*)")


def _secret_key(key: str) -> bool:
    name = unquote(key).strip().lower().replace("-", "_")
    return name in _SECRET_KEYS or name.endswith("_key") or any(part in name for part in _SECRET_PARTS)


def redact_url(url: str) -> str:
    """``url`` fit for messages, logs and stored sources: the password of ``user:password@`` (with or without a
    scheme) and the values of secret query-string / fragment parameters (``password``, ``token``, ``api_key``,
    ``key``, ``secret`` …) become ``***``. Anything else is kept as written."""
    match = _SCHEME.match(url)
    head, rest = (url[: match.end()], url[match.end() :]) if match else ("", url)
    host_start = 0
    first_at = rest.find("@")
    if first_at != -1 and not rest.startswith("/"):  # "scheme:///path" has no authority, so no userinfo
        # The userinfo ends at the last "@" before the path that follows it: a password may hold "@", "/" or "?".
        path_start = rest.find("/", first_at)
        at = rest.rfind("@", 0, path_start if path_start != -1 else len(rest))
        userinfo = rest[:at]
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            rest = f"{user}:***{rest[at:]}"
            at = len(user) + len(":***")
        host_start = at + 1
    tail_start = min(
        (i for i in (rest.find("?", host_start), rest.find("#", host_start)) if i != -1), default=-1
    )
    if tail_start == -1:
        return head + rest

    def hide(param: re.Match[str]) -> str:
        sep, key, value = param.groups()
        return f"{sep}{key}={'***' if value and _secret_key(key) else value}"

    return head + rest[:tail_start] + _PARAM.sub(hide, rest[tail_start:])


def redacted_config(config: FlywheelConfig) -> dict[str, Any]:
    """The configuration as JSON with the secrets of every URL hidden (``*_url`` / ``*_uri`` keys and any value
    holding ``://``), for ``flywheel config show`` and logs."""

    def walk(value: Any, key: str) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, key) for v in value]
        if isinstance(value, str) and (key.lower().endswith(("url", "uri")) or "://" in value):
            return redact_url(value)
        return value

    return walk(config.model_dump(mode="json"), "")  # type: ignore[no-any-return]
