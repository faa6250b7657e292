"""flywheel: turn an LLM application's production logs into proof that a smaller model can replace the big one.

``import flywheel`` is cheap: heavy dependencies (torch, transformers, FastAPI, Celery, MLflow) load only in the
modules that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from flywheel.client import AsyncClient as AsyncClient
    from flywheel.client import Client as Client
    from flywheel.sdk import instrument as instrument


def __getattr__(name: str) -> Any:
    # Loaded on first use: the client pulls httpx, the SDK its sinks.
    if name == "instrument":
        from flywheel.sdk import instrument

        return instrument
    if name in ("Client", "AsyncClient"):
        import flywheel.client

        return getattr(flywheel.client, name)
    raise AttributeError(f"module 'flywheel' has no attribute {name!r}")


__all__ = ["AsyncClient", "Client", "__version__", "instrument"]
