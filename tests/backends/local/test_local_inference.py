"""Batched chat inference on the packaged model: order, limits, stops, measurements, per-request errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.backends import ChatRequest, InferenceBackend
from flywheel.backends.local._chat import prompt_ids

pytestmark = pytest.mark.slow


def _ask(text: str, **kwargs: object) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], **kwargs)  # type: ignore[arg-type]


def test_batched_generation_keeps_request_order_limits_and_measurements(model_cache: Path) -> None:
    from flywheel.backends.local import LocalInferenceBackend

    backend = LocalInferenceBackend(cache_dir=model_cache, max_batch_size=2)
    assert isinstance(backend, InferenceBackend)
    requests = [
        _ask("Write a long story about a dragon who learns to bake bread in a small village.", max_tokens=6),
        _ask("Hi", max_tokens=1),
        _ask("List three fruits, separated by commas, then explain why each is healthy.", max_tokens=12),
        _ask("Count from one to twenty in words, separated by commas.", max_tokens=20, stop=[","]),
        _ask("Hello", max_tokens=10**6),  # beyond the context: this one fails, the others do not
    ]
    out = backend.generate(requests)
    tokenizer = backend.load().tokenizer
    backend.close()

    assert len(out) == len(requests)
    for request, generation in zip(requests[:4], out[:4], strict=True):
        assert generation.error is None
        # Prompts differ in length, so equal prompt token counts prove each answer went back to its request.
        assert generation.prompt_tokens == len(prompt_ids(tokenizer, request.messages, None))
        assert 1 <= generation.completion_tokens <= (request.max_tokens or 0)
        assert generation.latency_s > 0 and generation.content is not None
    assert len({g.prompt_tokens for g in out[:4]}) == 4
    assert out[1].completion_tokens == 1
    assert "," not in (out[3].content or "")
    assert out[4].error is not None and "context" in out[4].error and out[4].content is None


def test_greedy_answers_do_not_depend_on_batching(model_cache: Path) -> None:
    from flywheel.backends.local import LocalInferenceBackend

    # float32: padding changes bf16 rounding enough to flip a near-tie; fp32 shows the batching logic itself.
    requests = [_ask("What is the capital of France?", max_tokens=8), _ask("Say hello.", max_tokens=8)]
    batched = LocalInferenceBackend(cache_dir=model_cache, dtype="float32", max_batch_size=8)
    single = LocalInferenceBackend(cache_dir=model_cache, dtype="float32", max_batch_size=1)
    together = [g.content for g in batched.generate(requests)]
    alone = [g.content for g in single.generate(requests)]
    batched.close()
    single.close()
    assert together == alone
