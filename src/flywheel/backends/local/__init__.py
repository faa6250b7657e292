"""The local engine: real inference and LoRA fine-tuning with transformers + PEFT, on CPU or GPU.

Importing this package is cheap; torch/transformers/peft load when a backend is built or used. Without them,
building a backend raises :class:`~flywheel.errors.MissingDependencyError` naming ``pip install 'flywheel[local]'``.
"""

from __future__ import annotations

from flywheel.backends.local._inference import LocalInferenceBackend
from flywheel.backends.local._loading import release_models
from flywheel.backends.local._sources import DEFAULT_MODEL, PACKAGED_MODELS, ModelSource, resolve_model_source
from flywheel.backends.local._tools import parse_tool_calls

__all__ = [
    "DEFAULT_MODEL",
    "PACKAGED_MODELS",
    "LocalInferenceBackend",
    "ModelSource",
    "parse_tool_calls",
    "release_models",
    "resolve_model_source",
]
