"""Candidates answered by the NIM proxy's OpenAI-compatible endpoint, ``{nim_base_url}/v1``.

Generation is the OpenAI-compatible backend's (concurrency, retries, tool calls, usage), so flywheel's own scorers
see the same :class:`~flywheel.backends.Generation` s as with any other endpoint. A base model is addressed by its
``model_name``; a customized one by the name Customizer gave its output model, which the ``nemo`` training backend
records in the adapter folder it returns (:data:`MANIFEST`), so the registry's ``adapter_dir`` carries it here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel.backends._types import EndpointOptions, InferenceBackend
from flywheel.backends.nemo._client import PlatformEndpoints
from flywheel.errors import BackendError

#: The file in a ``nemo`` adapter folder that names the customized model on the platform.
MANIFEST = "nemo_customization.json"


@dataclass(frozen=True)
class CustomizedModel:
    """A model Customizer produced: its name on the NIM proxy, the job that made it and its base model."""

    model: str
    job_id: str | None = None
    base_model: str | None = None

    def write(self, adapter_dir: Path) -> Path:
        """Record it in ``adapter_dir`` (created if needed); returns the manifest's path."""
        adapter_dir.mkdir(parents=True, exist_ok=True)
        path = adapter_dir / MANIFEST
        path.write_text(
            json.dumps(
                {"customized_model": self.model, "job_id": self.job_id, "base_model": self.base_model},
                indent=2,
            )
            + "\n"
        )
        return path

    @classmethod
    def read(cls, adapter_dir: Path) -> CustomizedModel:
        """The customized model recorded in ``adapter_dir``; :class:`BackendError` when it holds none."""
        path = Path(adapter_dir) / MANIFEST
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            return cls(str(data["customized_model"]), data.get("job_id"), data.get("base_model"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BackendError(
                f"{adapter_dir} is not an adapter the nemo backend produced ({MANIFEST} is missing or unreadable: "
                f"{exc}); a NeMo candidate can only be evaluated with a model customized on the platform."
            ) from exc


def nim_inference(
    endpoints: PlatformEndpoints,
    model: str,
    *,
    api_key: str | None = None,
    endpoint: EndpointOptions | None = None,
) -> InferenceBackend:
    """An inference backend for ``model`` on the NIM proxy (``endpoint`` sets concurrency, timeout, retries)."""
    from flywheel.backends.openai_compat import OpenAICompatBackend

    options = endpoint or EndpointOptions()
    limits: dict[str, Any] = {
        name: value
        for name, value in (
            ("max_concurrency", options.max_concurrency),
            ("timeout_s", options.timeout_s),
            ("max_retries", options.max_retries),
        )
        if value is not None
    }
    key = options.api_key if options.api_key is not None else api_key
    return OpenAICompatBackend(base_url=endpoints.nim_v1, model=model, api_key=key, **limits)
