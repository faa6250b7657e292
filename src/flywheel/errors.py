"""The errors flywheel raises on purpose.

Every message says what happened and how to fix it. The CLI prints these without a traceback and the API maps
them to 4xx responses with the same text.

::

    FlywheelError
    ├── ConfigError          invalid configuration file, environment or per-job override
    ├── DataError            input data that cannot be used (too few records, unreadable file, …)
    ├── StoreError           the database is unreachable or its schema is not what we expect
    ├── BackendError         a model, judge, embedding or training backend failed
    │   └── MissingDependencyError   an optional extra is not installed
    ├── NotFoundError        an id that does not exist (job, record, candidate)
    ├── ConflictError        an action that the current state forbids (delete a running job, …)
    └── JobCancelled         raised inside a step when its job was cancelled
"""

from __future__ import annotations


class FlywheelError(Exception):
    """Base class of every error flywheel raises deliberately."""


class ConfigError(FlywheelError):
    """Configuration (file, environment or override) is invalid.

    ``problems`` holds one ``(key_path, message)`` pair per problem so that callers (API, CLI) can show all of them.
    """

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems: list[tuple[str, str]] = problems or []


class DataError(FlywheelError):
    """Input data cannot be used as it is."""


class StoreError(FlywheelError):
    """The store cannot be reached or is in an unexpected state."""


class BackendError(FlywheelError):
    """A model, judge, embedding or training backend failed."""


class MissingDependencyError(BackendError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"The Python package {module!r} is not installed; it is needed here. "
            f"Install it with: pip install 'flywheel[{extra}]'"
        )
        self.module = module
        self.extra = extra


class NotFoundError(FlywheelError):
    """The requested object does not exist."""


class ConflictError(FlywheelError):
    """The requested action is not allowed in the object's current state."""


class JobCancelled(FlywheelError):
    """Raised inside a running step when its job has been cancelled."""


def require(module: str, extra: str) -> None:
    """Raise :class:`MissingDependencyError` unless ``module`` can be imported."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(module, extra)
