"""Greedy answers do not depend on the batch size: batching, padding and the shared-prefix cache change no token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from flywheel.backends import ChatRequest
from flywheel.backends.local._device import choose_inference_dtype
from flywheel.backends.local._inference import padded_batch, prefix_cache, shared_prefix_length

SYSTEM = "Give the topic of the news headline: business, entertainment, politics, sports or tech. One word."
HEADLINES = [
    "Striker signs new contract",
    "Pop star cancels tour",
    "Broadband prices fall again",
    "Oscar nominations announced",
    "Oil prices hit a new high as winter demand grows",
    "Shares in chip maker soar after record quarterly profits",
    "Minister defends tax plan in parliament as critics call it unfair to the low paid",
    "Marathon champion retires after injury ends hopes of a fourth title at the city race next spring",
]
TEACHER = (
    "You are a patient teacher for curious children. Answer every question clearly, briefly and in plain English, "
    "with short words and no lists."
)
# Longer than every headline prompt, so that the length-sorted batches of 8 are the headlines, then these.
QUESTIONS = [
    "Explain in two short sentences why the sky is blue at noon, then say which colours sunsets have and why they "
    "are so different from the colour of the sky at noon.",
    "Write a short poem about an old lighthouse keeper who waits every stormy night for a ship that never comes "
    "home, in four lines that rhyme.",
    "List the eight planets of the solar system in order from the sun, and give one short fact about each of them "
    "that a ten year old would find surprising.",
    "Summarise this paragraph in one sentence: "
    "The village council met on Tuesday to discuss the new bridge over the river, which has been closed for "
    "repairs since the spring floods damaged its foundations. Engineers told the council that the old stone arches "
    "could be saved, but only if heavy lorries were banned from crossing for at least two more years. Farmers "
    "objected that the detour adds forty minutes to every trip to the market town, and the bakery said its "
    "deliveries would cost more. After a long debate the council voted to reopen the bridge to cars and vans only, "
    "and to ask the county for money to build a second crossing downstream.",
]


def _requests() -> list[ChatRequest]:
    system = {"role": "system", "content": SYSTEM}
    headlines = [
        ChatRequest(messages=[system, {"role": "user", "content": h}], max_tokens=12) for h in HEADLINES
    ]
    teacher = {"role": "system", "content": TEACHER}
    questions = [
        ChatRequest(messages=[teacher, {"role": "user", "content": q}], max_tokens=12) for q in QUESTIONS
    ]
    return [*questions, *headlines]


@pytest.mark.slow
def test_greedy_answers_at_batch_size_8_equal_batch_size_1_with_the_default_dtype(
    model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flywheel.backends.local import LocalInferenceBackend, _inference

    shared: list[int] = []

    def spy(model: Any, prefix: list[int], rows: int, device: str) -> tuple[str, Any]:
        shared.append(rows)
        return prefix_cache(model, prefix, rows, device)

    monkeypatch.setattr(_inference, "prefix_cache", spy)
    requests = _requests()
    single = LocalInferenceBackend(cache_dir=model_cache, max_batch_size=1)
    batched = LocalInferenceBackend(cache_dir=model_cache, max_batch_size=8)
    alone = single.generate(requests)
    assert shared == []  # batch size 1: every prompt computed whole
    together = batched.generate(requests)
    single.close()
    batched.close()

    assert shared == [8, 4]  # both batches computed their shared prefix once
    lengths = [g.prompt_tokens for g in alone]
    assert max(lengths) > 3 * min(lengths)  # very different prompt lengths, so batches are padded
    assert all(g.error is None and g.completion_tokens > 0 for g in alone + together)
    differ = [
        (i, a.raw_text, b.raw_text)
        for i, (a, b) in enumerate(zip(alone, together, strict=True))
        if a.raw_text != b.raw_text
    ]
    assert not differ, (
        f"{len(differ)} of {len(requests)} greedy answers changed with the batch size: {differ}"
    )


def test_rows_keep_the_shared_prefix_left_and_their_own_tokens_right_aligned() -> None:
    rows = [[1, 2, 3, 4, 5], [1, 2, 3, 9], [1, 2, 3, 7, 8, 6]]
    input_ids, attention = padded_batch(rows, pad_id=0, shared=3)
    assert input_ids.tolist() == [[1, 2, 3, 0, 4, 5], [1, 2, 3, 0, 0, 9], [1, 2, 3, 7, 8, 6]]
    assert attention.tolist() == [[1, 1, 1, 0, 1, 1], [1, 1, 1, 0, 0, 1], [1, 1, 1, 1, 1, 1]]
    plain, mask = padded_batch(rows, pad_id=0)  # no shared prefix: plain left padding
    assert plain.tolist()[1] == [0, 0, 1, 2, 3, 9] and mask.tolist()[1] == [0, 0, 1, 1, 1, 1]
    assert plain.dtype == torch.long


def test_shared_prefix_is_used_only_where_it_saves_work_and_leaves_each_row_a_token() -> None:
    prefix = list(range(100, 140))
    rows = [[*prefix, 1, 2], [*prefix, 3], [*prefix, 4, 5, 6], [*prefix, 7]]
    assert shared_prefix_length(rows) == 40
    assert shared_prefix_length([prefix] * 4) == 39  # the last token is fed, for its logits
    assert shared_prefix_length(rows[:1]) == 0  # one row shares with nobody
    assert shared_prefix_length(rows[:3]) == 0  # two saved copies of 40 tokens do not pay for the extra call
    assert shared_prefix_length([[1, 2, 3, r] for r in range(8)]) == 0  # too short to pay
    assert shared_prefix_length([[r, *prefix] for r in range(8)]) == 0  # nothing in common at the start


def test_inference_on_cpu_runs_in_float32_unless_a_dtype_is_asked_for() -> None:
    assert choose_inference_dtype("cpu") is torch.float32  # bf16 answers change with the batch size
    assert choose_inference_dtype("cpu", "auto") is torch.float32
    assert choose_inference_dtype("cpu", "bfloat16") is torch.bfloat16
