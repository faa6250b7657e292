"""The backends a job uses, built from each candidate's configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from flywheel.backends import DeploymentBackend, InferenceBackend, TrainingBackend
from flywheel.config import LoRAConfig, NIMConfig, Settings, TrainingConfig
from flywheel.config._models import NMPConfig


class BackendFactory(Protocol):
    """Builds the backends a job needs; the default uses the backend registry, tests may script them."""

    def inference(self, nim: NIMConfig, *, adapter_dir: Path | None = None) -> InferenceBackend: ...

    def training(self, nim: NIMConfig, training: TrainingConfig, lora: LoRAConfig) -> TrainingBackend: ...

    def release(self) -> None:
        """Free models and memory held for the job that just ended."""
        ...


@runtime_checkable
class ServingFactory(Protocol):
    """A :class:`BackendFactory` that can also serve candidates (an optional capability: the runner deploys a
    candidate's model before its evaluations only when its factory offers this)."""

    def deployment(self, nim: NIMConfig, *, started_by_flywheel: bool = False) -> DeploymentBackend | None:
        """The deployment of ``nim``'s model, or ``None`` when its backend serves nothing (it runs in this process
        or at an endpoint someone else runs). ``started_by_flywheel``: the job recorded that it started it."""
        ...


class ConfiguredBackends:
    """Builds inference and training backends for candidates through the backend registry.

    Local models are cached per process by their backend and released when a job ends (:meth:`release`).
    ``nmp`` is where the NeMo platform is (the service's ``nmp_config``); the registry hands it to the backends
    that run there. It is the service's, not each job's frozen copy, like the keys in ``env``: a job cannot override
    it, and a job resumed after the platform moved must reach it where it is now.
    """

    def __init__(self, home: Path, env: dict[str, str] | None = None, nmp: NMPConfig | None = None) -> None:
        self.home = Path(home)
        self.env = dict(env or {})
        self.nmp = nmp

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache" / "models"

    def inference(self, nim: NIMConfig, *, adapter_dir: Path | None = None) -> InferenceBackend:
        from flywheel.backends.registry import build_inference_backend

        return build_inference_backend(
            nim, adapter_dir=adapter_dir, cache_dir=self.cache_dir, env=self.env, nmp=self.nmp
        )

    def training(self, nim: NIMConfig, training: TrainingConfig, lora: LoRAConfig) -> TrainingBackend:
        from flywheel.backends.registry import build_training_backend

        return build_training_backend(
            nim, training, lora, cache_dir=self.cache_dir, env=self.env, nmp=self.nmp
        )

    def deployment(self, nim: NIMConfig, *, started_by_flywheel: bool = False) -> DeploymentBackend | None:
        """The deployment of ``nim``'s model when its backend offers the ``deployment`` role (``nemo``), else
        ``None``."""
        from flywheel.backends.registry import backend_roles, build_deployment_backend

        if "deployment" not in backend_roles(nim.backend):
            return None
        return build_deployment_backend(
            nim, env=self.env, nmp=self.nmp, started_by_flywheel=started_by_flywheel
        )

    def release(self) -> None:
        """Free the models the backends used by this process cache (the registry knows which were used)."""
        from flywheel.backends.registry import release_models

        release_models()


def default_backends(settings: Settings) -> ConfiguredBackends:
    """The backends for a service or CLI process."""
    return ConfiguredBackends(settings.home, dict(settings.env), settings.config.nmp_config)
