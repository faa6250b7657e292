"""Backends by name: a backend name (``nims[].backend``) → the factories it offers, one per role.

Roles: ``inference``, ``training``, ``embeddings``, ``merge`` (an adapter merged into its base model, for export) and
``deployment`` (serving a model; ``nemo`` offers it). Each role's interface is a small
Protocol in :mod:`flywheel.backends._types`; the pipeline asks this module and never imports a backend itself.

A backend lives in its own folder with a ``_factories`` module that sets ``BACKEND = BackendEntry(...)``; adding one
is that folder plus one line in :data:`_BUILT_IN` (or a :func:`register` call). The module is imported the first
time its backend is used, so ``import flywheel`` loads neither torch nor an HTTP stack it does not need.

Where a platform is (the configuration's ``nmp_config``) reaches only the backends that run on it: every builder
takes ``nmp=`` and hands it to a backend whose entry says ``uses_nmp_config=True`` (``nemo``); the others' factories
never see it, so they keep their signatures. The flag is on the entry, not guessed from each factory's signature, so
a backend states once, where it is registered, that it runs on the platform.

::

    backend = build_inference_backend(nim, cache_dir=home / "cache" / "models")          # base / ICL eval
    trainer = build_training_backend(nim, config.training_config, config.lora_config)   # LoRA fine-tune
    adapter = trainer.train(train, val, out_dir, on_progress, should_stop)
    tuned = build_inference_backend(nim, adapter_dir=adapter.adapter_dir)                # customized eval
    embedder = build_embedding_backend(embedding_nim_config)                              # ICL example selection
    serving = build_deployment_backend(nim, nmp=config.nmp_config)                        # a NeMo candidate's NIM
    build_merge_backend("local", "smollm2-135m-instruct").save_merged(adapter_dir, out)  # export --merged
    release_models()                                                                     # at the end of a job
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from flywheel.backends._types import (
    DeploymentBackend,
    EmbeddingBackend,
    EndpointOptions,
    InferenceBackend,
    MergeBackend,
    TrainingBackend,
)
from flywheel.config._models import EmbeddingConfig, LoRAConfig, NIMConfig, NMPConfig, TrainingConfig
from flywheel.errors import BackendError, ConfigError

Role = Literal["inference", "training", "embeddings", "merge", "deployment"]

# ------------------------------------------------------------------------------------------------ factories


class InferenceFactory(Protocol):
    """Builds the inference backend of one candidate (or judge).

    ``endpoint`` is passed only when the caller sets it (a judge does), so it may be left out by the factories of
    backends that run in this process.
    """

    def __call__(
        self,
        nim: NIMConfig,
        *,
        adapter_dir: Path | None,
        cache_dir: Path | None,
        env: Mapping[str, str],
        endpoint: EndpointOptions | None = None,
    ) -> InferenceBackend: ...


class TrainingFactory(Protocol):
    """Builds the training backend of one candidate."""

    def __call__(
        self,
        nim: NIMConfig,
        training: TrainingConfig,
        lora: LoRAConfig,
        *,
        cache_dir: Path | None,
        env: Mapping[str, str],
    ) -> TrainingBackend: ...


class EmbeddingFactory(Protocol):
    """Builds the embedding backend described by ``embedding_nim_config``."""

    def __call__(self, config: EmbeddingConfig, *, env: Mapping[str, str]) -> EmbeddingBackend: ...


class MergeFactory(Protocol):
    """Builds the merge backend of one base model (a candidate's ``model_path`` or ``model_name``)."""

    def __call__(self, model: str, *, cache_dir: Path | None, env: Mapping[str, str]) -> MergeBackend: ...


class DeploymentFactory(Protocol):
    """Builds the deployment backend of one candidate; ``started_by_flywheel``: a run recorded that flywheel
    started its deployment (so it may be shut down)."""

    def __call__(
        self, nim: NIMConfig, *, env: Mapping[str, str], started_by_flywheel: bool = False
    ) -> DeploymentBackend: ...


@dataclass(frozen=True)
class BackendEntry:
    """What one backend name offers: a factory per role it can play (``None``: it cannot), and how to free the
    models it caches in this process."""

    inference: InferenceFactory | None = None
    training: TrainingFactory | None = None
    embeddings: EmbeddingFactory | None = None
    merge: MergeFactory | None = None
    deployment: DeploymentFactory | None = None
    release: Callable[[], object] | None = None
    #: Its factories take ``nmp=`` (the configuration's ``nmp_config``, or ``None``): it runs on the NeMo platform.
    uses_nmp_config: bool = False


ROLES: tuple[Role, ...] = ("inference", "training", "embeddings", "merge", "deployment")

#: The built-in backends: name → the module whose ``BACKEND`` is its :class:`BackendEntry` (imported on first use).
_BUILT_IN: dict[str, str] = {
    "local": "flywheel.backends.local._factories",
    "openai": "flywheel.backends.openai_compat._factories",
    "scripted": "flywheel.backends.scripted._factories",
    "nemo": "flywheel.backends.nemo._factories",
}

#: Backends in use: the built-ins imported so far, and those added with :func:`register`.
_REGISTRY: dict[str, BackendEntry] = {}

#: What each role lets a backend do, for error messages.
_CAN: dict[Role, str] = {
    "inference": "generate answers",
    "training": "fine-tune",
    "embeddings": "compute embeddings",
    "merge": "merge an adapter into its base model on this machine",
    "deployment": "deploy models",
}


# ------------------------------------------------------------------------------------------------ the registry


def register(
    name: str,
    inference: InferenceFactory | None = None,
    training: TrainingFactory | None = None,
    *,
    embeddings: EmbeddingFactory | None = None,
    merge: MergeFactory | None = None,
    deployment: DeploymentFactory | None = None,
    release: Callable[[], object] | None = None,
    uses_nmp_config: bool = False,
) -> None:
    """Add (or replace) a backend name with the factories it offers; tests use this to plug in scripted behaviour.

    ``uses_nmp_config``: its factories take ``nmp=`` (see :class:`BackendEntry`)."""
    _REGISTRY[name] = BackendEntry(
        inference, training, embeddings, merge, deployment, release, uses_nmp_config
    )


def backend_names() -> list[str]:
    """The known backend names (built-in and registered)."""
    return sorted(set(_BUILT_IN) | set(_REGISTRY))


def backend_roles(name: str) -> frozenset[str]:
    """The roles backend ``name`` offers; empty for an unknown name or a backend missing from this installation."""
    try:
        entry = _entry(name)
    except (BackendError, ConfigError):
        return frozenset()
    return frozenset(role for role in ROLES if getattr(entry, role) is not None)


def release_models() -> None:
    """Free the models every backend used in this process caches (call at the end of a job)."""
    for entry in list(_REGISTRY.values()):
        if entry.release is not None:
            entry.release()


def _entry(name: str, key: str = "nims[].backend", subject: str = "") -> BackendEntry:
    entry = _REGISTRY.get(name)
    if entry is not None:
        return entry
    module = _BUILT_IN.get(name)
    if module is None:
        raise ConfigError(
            f"Unknown backend {name!r}{f' ({subject})' if subject else ''}; known: {', '.join(backend_names())}.",
            problems=[(key, f"unknown backend {name!r}")],
        )
    try:
        loaded = importlib.import_module(module).BACKEND
    except (ImportError, AttributeError) as exc:
        missing = getattr(exc, "name", None)
        if isinstance(exc, ImportError) and missing and not module.startswith(missing):
            raise  # a dependency of an installed backend is missing: its own error says which
        raise BackendError(
            f"The {name!r} backend is not available in this installation ({module}.BACKEND is missing); "
            "choose another backend (local, openai)."
        ) from exc
    if not isinstance(loaded, BackendEntry):
        raise BackendError(f"{module}.BACKEND is not a BackendEntry; the {name!r} backend is broken.")
    _REGISTRY[name] = loaded
    return loaded


def _factory(name: str, role: Role, subject: str, fix: str, key: str = "nims[].backend") -> Any:
    """The ``role`` factory of backend ``name``, or a :class:`BackendError` saying which backends can."""
    factory = getattr(_entry(name, key, subject), role)
    if factory is None:
        able = [n for n in backend_names() if role in backend_roles(n)]
        raise BackendError(
            f"{subject} uses backend {name!r}, which cannot {_CAN[role]}; {fix} "
            f"(backends that can: {', '.join(able) or 'none in this installation'})."
        )
    return factory


def _path(value: str | Path | None) -> Path | None:
    return Path(value) if value is not None else None


def _platform(name: str, nmp: NMPConfig | None) -> dict[str, Any]:
    """``{"nmp": nmp}`` for a backend that runs on the NeMo platform, else nothing (its factories do not take it)."""
    return {"nmp": nmp} if _entry(name).uses_nmp_config else {}


# ------------------------------------------------------------------------------------------------ one builder per role


def build_inference_backend(
    nim: NIMConfig,
    *,
    adapter_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    endpoint: EndpointOptions | None = None,
    nmp: NMPConfig | None = None,
) -> InferenceBackend:
    """The inference backend of candidate ``nim`` (with its fine-tuned ``adapter_dir`` for customized evaluation).

    ``cache_dir`` holds converted local models (e.g. ``<home>/cache/models``); ``env`` supplies API keys and the
    ``FLYWHEEL_DEVICE`` / ``FLYWHEEL_DTYPE`` overrides (default: ``os.environ``); ``endpoint`` sets the key,
    concurrency, timeout and retries of a backend that calls a server (a judge's settings); ``nmp`` is where the
    NeMo platform is (``nmp_config``, for the backends that run there).
    """
    factory = _factory(
        nim.backend, "inference", f"Candidate {nim.model_name!r}", "choose another nims[].backend"
    )
    extra: dict[str, Any] = {} if endpoint is None else {"endpoint": endpoint}  # see InferenceFactory
    extra.update(_platform(nim.backend, nmp))
    backend: InferenceBackend = factory(
        nim,
        adapter_dir=_path(adapter_dir),
        cache_dir=_path(cache_dir),
        env=os.environ if env is None else env,
        **extra,
    )
    return backend


def build_training_backend(
    nim: NIMConfig,
    training: TrainingConfig,
    lora: LoRAConfig,
    *,
    cache_dir: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    nmp: NMPConfig | None = None,
) -> TrainingBackend:
    """The training backend of candidate ``nim``, configured from ``training_config`` and ``lora_config``
    (``nmp``: where the NeMo platform is, for the backends that run there)."""
    factory = _factory(
        nim.backend,
        "training",
        f"Candidate {nim.model_name!r}",
        "set customization_enabled: false for it or choose a backend that can",
    )
    backend: TrainingBackend = factory(
        nim,
        training,
        lora,
        cache_dir=_path(cache_dir),
        env=os.environ if env is None else env,
        **_platform(nim.backend, nmp),
    )
    return backend


def build_embedding_backend(
    config: EmbeddingConfig,
    *,
    backend: str | None = None,
    env: Mapping[str, str] | None = None,
    nmp: NMPConfig | None = None,
) -> EmbeddingBackend:
    """The embedding backend of ``embedding_nim_config``: ``backend``, or by ``deployment_type`` ``remote`` → the
    OpenAI-compatible endpoint at ``config.url``, ``local`` → the local engine (sentence-transformers).

    ``env`` supplies the API key (``config.api_key_env``, then ``EMB_API_KEY``, then ``NVIDIA_API_KEY``); ``nmp`` is
    where the NeMo platform is, for a backend that runs there.
    """
    name = backend or ("openai" if config.deployment_type == "remote" else "local")
    key = "icl_config.similarity_config.embedding_nim_config"
    factory = _factory(
        name, "embeddings", "The embedding model", "set deployment_type to remote or local", key
    )
    embedder: EmbeddingBackend = factory(
        config, env=os.environ if env is None else env, **_platform(name, nmp)
    )
    return embedder


def build_merge_backend(
    backend: str,
    model: str,
    *,
    cache_dir: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> MergeBackend:
    """The merge backend of base ``model`` (a candidate's ``model_path`` or ``model_name``) on ``backend``.

    ``cache_dir`` is the conversion cache the job used (``<home>/cache/models``), so a merge converts nothing twice.
    """
    factory = _factory(
        backend,
        "merge",
        f"Base model {model!r}",
        "export the adapter without --merged and merge it where the base model lives",
    )
    merger: MergeBackend = factory(model, cache_dir=_path(cache_dir), env=os.environ if env is None else env)
    return merger


def build_deployment_backend(
    nim: NIMConfig,
    *,
    env: Mapping[str, str] | None = None,
    nmp: NMPConfig | None = None,
    started_by_flywheel: bool = False,
) -> DeploymentBackend:
    """The deployment backend of candidate ``nim`` (for backends that serve models, such as NeMo; ``nmp``: where
    the NeMo platform is; ``started_by_flywheel``: an earlier run recorded that flywheel started the deployment,
    so this one may shut it down)."""
    factory = _factory(
        nim.backend,
        "deployment",
        f"Candidate {nim.model_name!r}",
        "serve the model yourself and give its endpoint as backend openai with base_url",
    )
    deployment: DeploymentBackend = factory(
        nim,
        env=os.environ if env is None else env,
        started_by_flywheel=started_by_flywheel,
        **_platform(nim.backend, nmp),
    )
    return deployment
