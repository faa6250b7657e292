"""The scripted backend's registration (``nims[].backend: scripted``): deterministic stand-ins for orchestration tests."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from flywheel.backends._types import EmbeddingBackend, EndpointOptions, InferenceBackend, TrainingBackend
from flywheel.backends.registry import BackendEntry
from flywheel.config._models import EmbeddingConfig, LoRAConfig, NIMConfig, TrainingConfig


def inference(
    nim: NIMConfig,
    *,
    adapter_dir: Path | None,
    cache_dir: Path | None,
    env: Mapping[str, str],
    endpoint: EndpointOptions | None = None,
) -> InferenceBackend:
    """Echoes the last user message, or answers what a scripted adapter in ``adapter_dir`` learned."""
    from flywheel.backends.scripted import ScriptedInferenceBackend

    return ScriptedInferenceBackend(name=nim.model_name, adapter_dir=adapter_dir)


def training(
    nim: NIMConfig,
    training: TrainingConfig,
    lora: LoRAConfig,
    *,
    cache_dir: Path | None,
    env: Mapping[str, str],
) -> TrainingBackend:
    """Writes a scripted adapter that remembers the training answers."""
    from flywheel.backends.scripted import ScriptedTrainingBackend

    return ScriptedTrainingBackend(
        base_model=nim.model_name, epochs=training.epochs, max_steps=training.max_steps
    )


def embeddings(config: EmbeddingConfig, *, env: Mapping[str, str]) -> EmbeddingBackend:
    """Hashed bags of words."""
    from flywheel.backends.scripted import ScriptedEmbeddingBackend

    return ScriptedEmbeddingBackend()


BACKEND = BackendEntry(inference=inference, training=training, embeddings=embeddings)
