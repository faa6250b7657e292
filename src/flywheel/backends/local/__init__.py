"""The local engine: real inference and LoRA fine-tuning with transformers + PEFT, on CPU or GPU.

Importing this package is cheap; torch/transformers/peft load when a backend is built or used. Without them,
building a backend raises :class:`~flywheel.errors.MissingDependencyError` naming ``pip install 'flywheel[local]'``.

::

    backend = LocalInferenceBackend("smollm2-135m-instruct", cache_dir=home / "cache" / "models")
    generations = backend.generate([ChatRequest(messages=[...], tools=[...], max_tokens=64)])
    trainer = LocalTrainingBackend("smollm2-135m-instruct", training=TrainingParams(...), lora=LoRAParams(...))
    adapter = trainer.train(train_examples, val_examples, out_dir, on_progress, should_stop)
    tuned = LocalInferenceBackend("smollm2-135m-instruct", adapter_dir=adapter.adapter_dir)
    save_merged_model("smollm2-135m-instruct", adapter.adapter_dir, out_dir)  # a plain transformers folder
    release_models()  # at the end of a job
"""

from __future__ import annotations

from flywheel.backends.local._builder import training_params
from flywheel.backends.local._inference import LocalInferenceBackend
from flywheel.backends.local._loading import cached_models, release_models
from flywheel.backends.local._merge import LocalMergeBackend, save_merged_model
from flywheel.backends.local._sources import DEFAULT_MODEL, PACKAGED_MODELS, ModelSource, resolve_model_source
from flywheel.backends.local._tools import parse_tool_calls
from flywheel.backends.local._training import (
    DEFAULT_TARGET_MODULES,
    LocalTrainingBackend,
    LoRAParams,
    TrainingParams,
)

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_TARGET_MODULES",
    "PACKAGED_MODELS",
    "LoRAParams",
    "LocalInferenceBackend",
    "LocalMergeBackend",
    "LocalTrainingBackend",
    "ModelSource",
    "TrainingParams",
    "cached_models",
    "parse_tool_calls",
    "release_models",
    "resolve_model_source",
    "save_merged_model",
    "training_params",
]
