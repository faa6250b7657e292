"""Choose the embedding backend for semantic-similarity selection from ``embedding_nim_config``."""

from __future__ import annotations

from collections.abc import Mapping

from flywheel.backends._types import EmbeddingBackend
from flywheel.backends.registry import build_embedding_backend
from flywheel.config import EmbeddingConfig
from flywheel.config._models import NMPConfig


def embedder_from_config(
    config: EmbeddingConfig, env: Mapping[str, str], nmp: NMPConfig | None = None
) -> EmbeddingBackend:
    """``remote`` → an OpenAI-compatible ``/v1/embeddings`` client (key from ``api_key_env``, then ``EMB_API_KEY``,
    then ``NVIDIA_API_KEY``); ``local`` → sentence-transformers (default: the packaged all-MiniLM-L6-v2).
    ``nmp`` (``nmp_config``) reaches a backend that runs on the NeMo platform."""
    return build_embedding_backend(config, env=env, nmp=nmp)
