"""The backends a job uses, built from each candidate's configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from flywheel.backends import InferenceBackend, TrainingBackend
from flywheel.config import LoRAConfig, NIMConfig, Settings, TrainingConfig


class BackendFactory(Protocol):
    """Builds the backends a job needs; the default uses the backend registry, tests may script them."""

    def inference(self, nim: NIMConfig, *, adapter_dir: Path | None = None) -> InferenceBackend: ...

    def training(self, nim: NIMConfig, training: TrainingConfig, lora: LoRAConfig) -> TrainingBackend: ...

    def release(self) -> None:
        """Free models and memory held for the job that just ended."""
        ...


class ConfiguredBackends:
    """Builds inference and training backends for candidates through the backend registry.

    Local models are cached per process by their backend and released when a job ends (:meth:`release`).
    """

    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
        self.home = Path(home)
        self.env = dict(env or {})

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache" / "models"

    def inference(self, nim: NIMConfig, *, adapter_dir: Path | None = None) -> InferenceBackend:
        from flywheel.backends.registry import build_inference_backend

        return build_inference_backend(nim, adapter_dir=adapter_dir, cache_dir=self.cache_dir, env=self.env)

    def training(self, nim: NIMConfig, training: TrainingConfig, lora: LoRAConfig) -> TrainingBackend:
        from flywheel.backends.registry import build_training_backend

        return build_training_backend(nim, training, lora, cache_dir=self.cache_dir, env=self.env)

    def release(self) -> None:
        """Free the models the backends used by this process cache (the registry knows which were used)."""
        from flywheel.backends.registry import release_models

        release_models()


def default_backends(settings: Settings) -> ConfiguredBackends:
    """The backends for a service or CLI process."""
    return ConfiguredBackends(settings.home, dict(settings.env))
