"""Backends by name: ``nims[].backend`` → a factory that builds the inference or training backend.

Implementations are imported only when a backend is built, so ``import flywheel`` never loads torch or an HTTP
stack it does not need. A new backend is a new folder plus one :func:`register` line (or call).

::

    backend = build_inference_backend(nim, cache_dir=home / "cache" / "models")          # base / ICL eval
    trainer = build_training_backend(nim, config.training_config, config.lora_config)   # LoRA fine-tune
    adapter = trainer.train(train, val, out_dir, on_progress, should_stop)
    tuned = build_inference_backend(nim, adapter_dir=adapter.adapter_dir)                # customized eval
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from flywheel.backends._types import InferenceBackend, TrainingBackend
from flywheel.config._models import LoRAConfig, NIMConfig, TrainingConfig
from flywheel.errors import BackendError, ConfigError


class InferenceFactory(Protocol):
    """Builds an inference backend for one candidate."""

    def __call__(
        self, nim: NIMConfig, *, adapter_dir: Path | None, cache_dir: Path | None, env: Mapping[str, str]
    ) -> InferenceBackend: ...


class TrainingFactory(Protocol):
    """Builds a training backend for one candidate."""

    def __call__(
        self,
        nim: NIMConfig,
        training: TrainingConfig,
        lora: LoRAConfig,
        *,
        cache_dir: Path | None,
        env: Mapping[str, str],
    ) -> TrainingBackend: ...


@dataclass(frozen=True)
class BackendEntry:
    """What one backend name can build (``training`` is ``None`` for inference-only backends)."""

    inference: InferenceFactory
    training: TrainingFactory | None = None


# ------------------------------------------------------------------------------------------------ factories


def _local_inference(
    nim: NIMConfig, *, adapter_dir: Path | None, cache_dir: Path | None, env: Mapping[str, str]
) -> InferenceBackend:
    from flywheel.backends.local import LocalInferenceBackend

    return LocalInferenceBackend(
        nim.model_path or nim.model_name,
        adapter_dir=adapter_dir,
        cache_dir=cache_dir,
        device=env.get("FLYWHEEL_DEVICE"),
        dtype=env.get("FLYWHEEL_DTYPE"),
        name=nim.model_name,
    )


def _local_training(
    nim: NIMConfig,
    training: TrainingConfig,
    lora: LoRAConfig,
    *,
    cache_dir: Path | None,
    env: Mapping[str, str],
) -> TrainingBackend:
    from flywheel.backends.local import LocalTrainingBackend, training_params

    params, lora_params = training_params(training, lora, nim.customizer_configs)
    return LocalTrainingBackend(
        nim.model_path or nim.model_name,
        training=params,
        lora=lora_params,
        cache_dir=cache_dir,
        device=env.get("FLYWHEEL_DEVICE"),
        dtype=env.get("FLYWHEEL_DTYPE"),
    )


def _openai_inference(
    nim: NIMConfig, *, adapter_dir: Path | None, cache_dir: Path | None, env: Mapping[str, str]
) -> InferenceBackend:
    if adapter_dir is not None:
        raise BackendError(
            f"Candidate {nim.model_name!r} runs on an OpenAI-compatible endpoint, which cannot load a local LoRA "
            "adapter; serve the adapter from the endpoint (e.g. vLLM --lora-modules) and add it as its own candidate."
        )
    if not nim.base_url:
        raise ConfigError(
            f"Candidate {nim.model_name!r} has backend 'openai' but no base_url; set nims[].base_url (…/v1).",
            problems=[("nims[].base_url", "required for backend openai")],
        )
    from flywheel.backends.openai_compat import OpenAICompatBackend

    api_key = env.get(nim.api_key_env) if nim.api_key_env else None
    return OpenAICompatBackend(base_url=nim.base_url, model=nim.model_name, api_key=api_key)  # type: ignore[no-any-return]


def _scripted_inference(
    nim: NIMConfig, *, adapter_dir: Path | None, cache_dir: Path | None, env: Mapping[str, str]
) -> InferenceBackend:
    from flywheel.backends.scripted import ScriptedInferenceBackend

    return ScriptedInferenceBackend(name=nim.model_name, adapter_dir=adapter_dir)


def _scripted_training(
    nim: NIMConfig,
    training: TrainingConfig,
    lora: LoRAConfig,
    *,
    cache_dir: Path | None,
    env: Mapping[str, str],
) -> TrainingBackend:
    from flywheel.backends.scripted import ScriptedTrainingBackend

    return ScriptedTrainingBackend(
        base_model=nim.model_name, epochs=training.epochs, max_steps=training.max_steps
    )


def _nemo_inference(
    nim: NIMConfig, *, adapter_dir: Path | None, cache_dir: Path | None, env: Mapping[str, str]
) -> InferenceBackend:
    factory = _import_optional("flywheel.backends.nemo", "build_inference_backend", "nemo")
    return factory(nim, adapter_dir=adapter_dir, cache_dir=cache_dir, env=env)  # type: ignore[no-any-return]


def _nemo_training(
    nim: NIMConfig,
    training: TrainingConfig,
    lora: LoRAConfig,
    *,
    cache_dir: Path | None,
    env: Mapping[str, str],
) -> TrainingBackend:
    factory = _import_optional("flywheel.backends.nemo", "build_training_backend", "nemo")
    return factory(nim, training, lora, cache_dir=cache_dir, env=env)  # type: ignore[no-any-return]


def _import_optional(module: str, attribute: str, name: str) -> Callable[..., Any]:
    import importlib

    try:
        value = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise BackendError(
            f"The {name!r} backend is not available in this installation ({module}.{attribute} is missing); "
            f"choose another nims[].backend (local, openai)."
        ) from exc
    return value  # type: ignore[no-any-return]


_REGISTRY: dict[str, BackendEntry] = {
    "local": BackendEntry(_local_inference, _local_training),
    "openai": BackendEntry(_openai_inference, None),
    "scripted": BackendEntry(_scripted_inference, _scripted_training),
    "nemo": BackendEntry(_nemo_inference, _nemo_training),
}


# ------------------------------------------------------------------------------------------------ public API


def register(name: str, inference: InferenceFactory, training: TrainingFactory | None = None) -> None:
    """Add (or replace) a backend name; tests use this to plug in their own scripted behaviour."""
    _REGISTRY[name] = BackendEntry(inference, training)


def backend_names() -> list[str]:
    """The registered backend names."""
    return sorted(_REGISTRY)


def _entry(nim: NIMConfig) -> BackendEntry:
    entry = _REGISTRY.get(nim.backend)
    if entry is None:
        raise ConfigError(
            f"Unknown backend {nim.backend!r} for candidate {nim.model_name!r}; known: {', '.join(backend_names())}.",
            problems=[("nims[].backend", f"unknown backend {nim.backend!r}")],
        )
    return entry


def build_inference_backend(
    nim: NIMConfig,
    *,
    adapter_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> InferenceBackend:
    """The inference backend of candidate ``nim`` (with its fine-tuned ``adapter_dir`` for customized evaluation).

    ``cache_dir`` holds converted local models (e.g. ``<home>/cache/models``); ``env`` supplies API keys and the
    ``FLYWHEEL_DEVICE`` / ``FLYWHEEL_DTYPE`` overrides (default: ``os.environ``).
    """
    return _entry(nim).inference(
        nim,
        adapter_dir=Path(adapter_dir) if adapter_dir is not None else None,
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
        env=os.environ if env is None else env,
    )


def build_training_backend(
    nim: NIMConfig,
    training: TrainingConfig,
    lora: LoRAConfig,
    *,
    cache_dir: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> TrainingBackend:
    """The training backend of candidate ``nim``, configured from ``training_config`` and ``lora_config``."""
    entry = _entry(nim)
    if entry.training is None:
        raise BackendError(
            f"Candidate {nim.model_name!r} uses backend {nim.backend!r}, which cannot fine-tune; set "
            "customization_enabled: false for it or use backend local (or nemo)."
        )
    return entry.training(
        nim,
        training,
        lora,
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
        env=os.environ if env is None else env,
    )
