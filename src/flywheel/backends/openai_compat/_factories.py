"""The OpenAI-compatible backend's registration: config → HTTP clients for chat completions and embeddings.

Importing this module is cheap; each factory imports what it builds.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flywheel.backends._types import EmbeddingBackend, EndpointOptions, InferenceBackend
from flywheel.backends.registry import BackendEntry
from flywheel.config._models import EmbeddingConfig, NIMConfig
from flywheel.errors import BackendError, ConfigError


def inference(
    nim: NIMConfig,
    *,
    adapter_dir: Path | None,
    cache_dir: Path | None,
    env: Mapping[str, str],
    endpoint: EndpointOptions | None = None,
) -> InferenceBackend:
    """A chat-completions client for ``nim.base_url``; the key is ``endpoint.api_key``, else ``env[api_key_env]``."""
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
    from flywheel.backends.openai_compat._chat import OpenAICompatBackend

    endpoint = endpoint or EndpointOptions()
    api_key = endpoint.api_key
    if api_key is None and nim.api_key_env:
        api_key = env.get(nim.api_key_env)
    limits: dict[str, Any] = {
        name: value
        for name, value in (
            ("max_concurrency", endpoint.max_concurrency),
            ("timeout_s", endpoint.timeout_s),
            ("max_retries", endpoint.max_retries),
        )
        if value is not None
    }
    return OpenAICompatBackend(base_url=nim.base_url, model=nim.model_name, api_key=api_key, **limits)


def embeddings(config: EmbeddingConfig, *, env: Mapping[str, str]) -> EmbeddingBackend:
    """A ``/v1/embeddings`` client for ``config.url``; key from ``api_key_env``, ``EMB_API_KEY``, ``NVIDIA_API_KEY``."""
    if not config.url or not config.model_name:
        raise ConfigError(
            "icl_config.similarity_config.embedding_nim_config with deployment_type remote needs url and "
            "model_name"
        )
    from flywheel.backends.openai_compat._embeddings import OpenAIEmbeddings

    names = [n for n in (config.api_key_env, "EMB_API_KEY", "NVIDIA_API_KEY") if n]
    key = next((env[n] for n in names if env.get(n)), None)
    return OpenAIEmbeddings(url=config.url, model=config.model_name, api_key=key)


BACKEND = BackendEntry(inference=inference, embeddings=embeddings)
