"""Loading and validating configuration, with every problem reported at once."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from flywheel.config._models import FlywheelConfig
from flywheel.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def _hint(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid value"))
    if kind == "extra_forbidden":
        return "unknown key; remove it or check its spelling"
    if kind == "missing":
        return "required key is missing; add it"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if "input" in err and kind not in ("missing",) and not isinstance(err["input"], dict | list):
        return f"{msg} (got {err['input']!r})"
    return msg


def problems_from_validation_error(exc: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    """Turn a pydantic error into ``(key_path, message)`` pairs, one per problem."""
    out = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = _key_path(loc)
        if prefix:
            path = f"{prefix}.{path}" if path != "(top level)" else prefix
        out.append((path, _hint(dict(err))))
    return out


def format_problems(title: str, problems: list[tuple[str, str]]) -> str:
    lines = [f"{title} ({len(problems)} problem{'s' if len(problems) != 1 else ''}):"]
    lines += [f"  - {path}: {msg}" for path, msg in problems]
    return "\n".join(lines)


def validate_model(model: type[M], data: Any, *, what: str, prefix: str = "") -> M:
    """Validate ``data`` as ``model``; on failure raise one :class:`ConfigError` listing every problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = problems_from_validation_error(exc, prefix)
        raise ConfigError(format_problems(f"Invalid {what}", problems), problems) from None


def load_config_file(path: str | Path) -> FlywheelConfig:
    """Read and validate a YAML configuration file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"Configuration file {str(path)!r} does not exist. Pass --config FILE or set FLYWHEEL_CONFIG, "
            "or run from the repository root where config/config.yaml lives."
        ) from None
    except OSError as exc:  # a directory, no permission, …
        raise ConfigError(
            f"Configuration file {str(path)!r} cannot be read ({exc.strerror or exc}). "
            "Pass --config FILE or set FLYWHEEL_CONFIG to a readable YAML file."
        ) from None
    try:
        text = raw.decode("utf-8-sig")  # a leading byte-order mark is allowed
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            f"Configuration file {str(path)!r} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line}, "
            f"column {column}). Save it as UTF-8."
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"Configuration file {str(path)!r} is not valid YAML{where}: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"Configuration file {str(path)!r} must hold a mapping of keys, not {type(data).__name__}."
        )
    return validate_model(FlywheelConfig, data, what=f"configuration in {str(path)!r}")


def runnable_problems(config: FlywheelConfig, known_backends: Collection[str]) -> list[tuple[str, str]]:
    """What keeps a valid configuration from running a job, as ``(key_path, message)`` pairs: a file without any
    key, no candidate, a candidate whose backend nobody provides.

    ``known_backends`` comes from :func:`flywheel.backends.registry.backend_names` (backends can be registered at run
    time, so the file's schema cannot list them).
    """
    if not config.model_fields_set:
        return [
            (
                "(top level)",
                "the file is empty; add at least one candidate under nims (see config/config.yaml)",
            )
        ]
    problems = []
    if not config.nims:
        problems.append(("nims", "no candidate to evaluate; add at least one model under nims"))
    known = ", ".join(sorted(known_backends))
    for i, nim in enumerate(config.nims):
        if nim.backend not in known_backends:
            problems.append(
                (
                    f"nims[{i}].backend",
                    f"unknown backend {nim.backend!r} for {nim.model_name!r}; known: {known}",
                )
            )
    return problems


def apply_overrides(base: M, overrides: dict[str, Any] | None, *, what: str) -> M:
    """Return ``base`` with the given fields replaced, validated as a whole.

    Omitted fields keep the values of ``base`` (the configuration file), never the model defaults.
    """
    if not overrides:
        return base
    merged = base.model_dump(exclude_unset=False)
    merged.update(overrides)
    return validate_model(type(base), merged, what=what, prefix=what)
