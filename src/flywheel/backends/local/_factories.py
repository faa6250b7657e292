"""The local engine's registration: config → local backends, for every role it plays.

Importing this module is cheap; each factory imports what it builds.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from flywheel.backends._types import (
    EmbeddingBackend,
    EndpointOptions,
    InferenceBackend,
    MergeBackend,
    TrainingBackend,
)
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
    """Transformers on this machine; ``FLYWHEEL_DEVICE`` / ``FLYWHEEL_DTYPE`` in ``env`` override the choices,
    ``FLYWHEEL_CPU_THREADS`` sets the process's CPU thread budget."""
    from flywheel.backends.local._inference import LocalInferenceBackend
    from flywheel.backends.local._threads import cpu_threads_from_env

    return LocalInferenceBackend(
        nim.model_path or nim.model_name,
        adapter_dir=adapter_dir,
        cache_dir=cache_dir,
        device=env.get("FLYWHEEL_DEVICE"),
        dtype=env.get("FLYWHEEL_DTYPE"),
        name=nim.model_name,
        cpu_threads=cpu_threads_from_env(env),
    )


def training(
    nim: NIMConfig,
    training: TrainingConfig,
    lora: LoRAConfig,
    *,
    cache_dir: Path | None,
    env: Mapping[str, str],
) -> TrainingBackend:
    """PEFT LoRA on this machine, configured from ``training_config``, ``lora_config`` and ``customizer_configs``."""
    from flywheel.backends.local._builder import training_params
    from flywheel.backends.local._threads import cpu_threads_from_env
    from flywheel.backends.local._training import LocalTrainingBackend

    params, lora_params = training_params(training, lora, nim.customizer_configs)
    return LocalTrainingBackend(
        nim.model_path or nim.model_name,
        training=params,
        lora=lora_params,
        cache_dir=cache_dir,
        device=env.get("FLYWHEEL_DEVICE"),
        dtype=env.get("FLYWHEEL_DTYPE"),
        cpu_threads=cpu_threads_from_env(env),
    )


def embeddings(config: EmbeddingConfig, *, env: Mapping[str, str]) -> EmbeddingBackend:
    """sentence-transformers with ``model_path``, else ``model_name`` (unless it names NVIDIA's NIM embedding
    model, which does not run here), else the packaged all-MiniLM-L6-v2."""
    from flywheel.backends.local._embeddings import DEFAULT_EMBEDDING_MODEL, SentenceTransformerEmbeddings
    from flywheel.backends.local._threads import cpu_threads_from_env

    source = config.model_path
    if source is None and config.model_name and "nv-embed" not in config.model_name:
        source = config.model_name
    return SentenceTransformerEmbeddings(
        source or DEFAULT_EMBEDDING_MODEL, cpu_threads=cpu_threads_from_env(env)
    )


def merge(model: str, *, cache_dir: Path | None, env: Mapping[str, str]) -> MergeBackend:
    """Merges on this machine's CPU, from the weights the local backends load."""
    from flywheel.backends.local._merge import LocalMergeBackend

    return LocalMergeBackend(model, cache_dir=cache_dir)


def release() -> None:
    """Drop the cached models no backend is using."""
    from flywheel.backends.local._loading import release_models

    release_models()


BACKEND = BackendEntry(
    inference=inference, training=training, embeddings=embeddings, merge=merge, release=release
)
