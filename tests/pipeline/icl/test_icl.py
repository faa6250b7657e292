"""Few-shot sets: bins, budgets, injection, uniform and semantic selection, and the numpy vector index."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
import pytest

from factories import chat_record, tool_call
from flywheel.backends.openai_compat._embeddings import OpenAIEmbeddings
from flywheel.config import EmbeddingConfig, ICLConfig
from flywheel.config._models import SimilarityConfig
from flywheel.errors import BackendError, ConfigError
from flywheel.pipeline.icl import (
    Example,
    VectorIndex,
    build_icl_records,
    count_tokens,
    embedder_from_config,
    fit_examples,
    format_example,
    inject_examples,
    last_user_query,
    relevance_coverage,
    uniform_bins,
)


class BagOfWords:
    """A deterministic embedder for tests: hashed word counts (similar wording → similar vectors)."""

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, zlib.crc32(word.encode()) % self.dim] += 1
        return out


@pytest.mark.parametrize(
    ("args", "bins"),
    [((10, 5), [2, 2, 2, 2, 2]), ((10, 3), [4, 3, 3]), ((2, 5), [1, 1, 0, 0, 0]), ((10, 1), [10])],
)
def test_uniform_bins(args: tuple[int, int], bins: list[int]) -> None:
    assert uniform_bins(*args) == bins


def test_count_tokens_uses_the_tokenizer_with_a_margin() -> None:
    assert count_tokens("", lambda s: 99) == 0
    assert count_tokens("hello", lambda s: 5) == 6
    assert count_tokens("hello", lambda s: [1] * 50) == 60
    assert count_tokens("x" * 400) == 120  # 100 estimated + 20%


def _ex(name: str, tokens: int, group: str) -> Example:
    return Example(text=name, tokens=tokens, group=group)


def test_fit_is_round_robin_within_budget_and_max() -> None:
    groups = {
        "t1": [_ex("r1", 50, "t1"), _ex("r3", 60, "t1")],
        "t2": [_ex("r2", 40, "t2"), _ex("r4", 70, "t2")],
    }
    assert [e.text for e in fit_examples(groups, 220, 10)] == ["r1", "r2", "r3", "r4"]
    assert [e.text for e in fit_examples(groups, 220, 3)] == ["r1", "r2", "r3"]
    assert fit_examples(groups, 30, 10) == []
    # A long example is skipped, not the end of the selection.
    assert [
        e.text for e in fit_examples({"a": [_ex("long", 500, "a")], "b": [_ex("short", 10, "b")]}, 100, 5)
    ] == ["short"]


def test_inject_prepends_to_an_existing_system_message_or_adds_one() -> None:
    examples = [_ex("EXAMPLE-1", 1, "g")]
    with_system = inject_examples(chat_record(), examples)
    assert with_system["request"]["messages"][0]["content"].endswith("EXAMPLE-1\n\nBe brief.")
    record = chat_record()
    record["request"]["messages"].pop(0)
    added = inject_examples(record, examples)
    assert [m["role"] for m in added["request"]["messages"]] == ["system", "user"]
    assert len(record["request"]["messages"]) == 1  # input untouched


def test_format_example_and_query() -> None:
    text = format_example(chat_record("Hello", None, tool_calls=[tool_call("get_weather", {"c": 1})]))
    assert "user: Hello" in text and "For example" in text and "Tool calls:" in text and "get_weather" in text
    assert last_user_query(chat_record("Hello")) == "Hello"
    assert last_user_query({"request": {"messages": [{"role": "assistant", "content": "x"}]}}) is None


def test_uniform_generic_injects_exactly_max_examples_everywhere() -> None:
    pool = [chat_record(f"train question {i}", f"answer {i}") for i in range(10)]
    evals = [chat_record(f"eval question {i}", "x") for i in range(4)]
    out, stats = build_icl_records(evals, pool, ICLConfig(max_examples=3), workload_type="generic")
    assert len(out) == 4
    for record in out:
        assert record["request"]["messages"][0]["content"].count("For example") == 3
    assert stats.as_dict()["mean_examples"] == 3.0


def test_uniform_tool_calling_spreads_examples_over_tools() -> None:
    pool = [
        chat_record(f"q{i}", None, tool_calls=[tool_call(f"tool_{i % 2}", {})], tools=[]) for i in range(6)
    ]
    out, _ = build_icl_records(
        [chat_record("eval")], pool, ICLConfig(max_examples=2), workload_type="tool_calling"
    )
    system = out[0]["request"]["messages"][0]["content"]
    assert "tool_0" in system and "tool_1" in system


def test_no_budget_leaves_records_unchanged() -> None:
    pool = [chat_record("train", "answer")]
    evals = [chat_record("x" * 4000)]
    icl = ICLConfig(max_context_length=1000, reserved_tokens=100, max_examples=1)
    out, stats = build_icl_records(evals, pool, icl, workload_type="generic")
    assert out[0] is evals[0]
    assert stats.no_budget == 1


def test_semantic_similarity_picks_the_most_similar_train_record() -> None:
    pool = [
        chat_record("how do I reset my router password", "[[[network]]]"),
        chat_record("what is the capital of peru", "[[[geo]]]"),
        chat_record("which river flows through paris", "[[[geo]]]"),
    ]
    evals = [chat_record("reset the router password please"), chat_record("the capital of peru is")]
    icl = ICLConfig(
        max_examples=1,
        example_selection="semantic_similarity",
        similarity_config=SimilarityConfig(embedding_nim_config=EmbeddingConfig(deployment_type="local")),
    )
    embedder = BagOfWords()
    out, stats = build_icl_records(evals, pool, icl, workload_type="classification", embedder=embedder)
    assert "router password" in out[0]["request"]["messages"][0]["content"]
    assert "capital of peru" in out[1]["request"]["messages"][0]["content"]
    assert embedder.calls == 2  # pool once, eval queries once
    assert stats.examples_injected == 2
    with pytest.raises(ConfigError):
        build_icl_records(evals, pool, icl, workload_type="classification")


def test_relevance_then_coverage() -> None:
    ranked = [_ex("1", 1, "tool_a"), _ex("2", 1, "tool_a"), _ex("3", 1, "tool_b")]
    chosen = relevance_coverage(ranked, 3, 0.5)
    assert set(chosen) == {"tool_a", "tool_b"}
    only_relevance = relevance_coverage(ranked, 2, 1.0)
    assert [e.text for g in only_relevance.values() for e in g] == ["1", "2"]


@pytest.mark.parametrize("dim", [3, 384, 1000])
def test_vector_index_matches_brute_force_with_chunks_and_any_size(dim: int) -> None:
    rng = np.random.default_rng(dim)
    vectors = rng.normal(size=(500, dim))
    queries = rng.normal(size=(7, dim))
    scores, idx = VectorIndex(vectors, chunk_rows=64).search(queries, 5)
    vn = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    expected = np.argsort(-(qn @ vn.T), axis=1)[:, :5]
    assert (idx == expected).all()
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    assert VectorIndex(vectors[:2]).search(queries, 5)[1].shape == (7, 2)
    with pytest.raises(ValueError):
        VectorIndex(vectors).search(rng.normal(size=(1, dim + 1)), 1)


def test_openai_compatible_embeddings_batches_and_orders_by_index() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = httpx.Request("POST", "http://x", content=request.content).read()
        import json

        payload = json.loads(body)
        seen.append({"auth": request.headers.get("authorization"), "url": str(request.url), **payload})
        data = [{"index": i, "embedding": [float(len(t)), 1.0]} for i, t in enumerate(payload["input"])]
        return httpx.Response(200, json={"data": list(reversed(data))})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    emb = OpenAIEmbeddings("http://emb.test/v1", "m", api_key="k", batch_size=2, client=client)
    out = emb.embed(["a", "bb", "ccc"])
    assert out.tolist() == [[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]]
    assert [s["input"] for s in seen] == [["a", "bb"], ["ccc"]]
    assert seen[0]["auth"] == "Bearer k" and seen[0]["url"] == "http://emb.test/v1/embeddings"

    failing = OpenAIEmbeddings(
        "http://emb.test/v1/embeddings",
        "m",
        client=httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(401, text="bad key"))),
    )
    with pytest.raises(BackendError, match="401"):
        failing.embed(["a"])


def test_remote_embedder_key_comes_from_emb_api_key_then_nvidia_api_key() -> None:
    cfg = EmbeddingConfig(deployment_type="remote", url="http://emb.test/v1", model_name="m")
    both = embedder_from_config(cfg, {"EMB_API_KEY": "emb", "NVIDIA_API_KEY": "nv"})
    nvidia = embedder_from_config(cfg, {"NVIDIA_API_KEY": "nv"})
    assert isinstance(both, OpenAIEmbeddings) and isinstance(nvidia, OpenAIEmbeddings)
    assert both._headers["Authorization"] == "Bearer emb"
    assert nvidia._headers["Authorization"] == "Bearer nv"
    with pytest.raises(ConfigError):
        embedder_from_config(EmbeddingConfig(deployment_type="remote"), {})
