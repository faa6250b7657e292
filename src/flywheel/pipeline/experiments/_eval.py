"""Answering an eval set with a candidate and scoring it against the teacher."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flywheel.backends import ChatRequest, Generation, InferenceBackend
from flywheel.errors import JobCancelled
from flywheel.pipeline.evaluate import EvaluationResult, Judge, candidate_requests, evaluate


@dataclass(frozen=True)
class EvalSettings:
    """How a candidate is evaluated; the job runner builds it from ``evaluation_config`` once per job."""

    workload_type: str = "auto"
    """``auto`` (detected from the records), ``classification``, ``tool_calling`` or ``generic``."""
    max_tokens: int | None = None
    """Answer length cap per request; ``None``: :func:`answer_token_budget` of the records."""
    limit: int | None = None
    """Score at most this many records (``None``: all)."""
    batch_size: int = 16
    """Requests per ``generate`` call (cancellation is checked between batches)."""
    bootstrap_samples: int = 1000
    """Resamples for the confidence intervals."""
    confidence: float = 0.95
    """Confidence level of the intervals."""
    seed: int = 0
    """Seed of the bootstrap."""


def generate_answers(
    backend: InferenceBackend,
    requests: Sequence[ChatRequest],
    *,
    batch_size: int = 16,
    on_progress: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Generation]:
    """Ask ``backend`` every request, ``batch_size`` at a time, checking for cancellation between batches.

    ``on_progress`` receives the fraction done (0–1) after every batch. Raises :class:`JobCancelled` when
    ``should_stop`` returns true.
    """
    out: list[Generation] = []
    total = len(requests)
    for start in range(0, total, batch_size):
        if should_stop is not None and should_stop():
            raise JobCancelled(f"Cancelled after {start} of {total} answers.")
        out.extend(backend.generate(requests[start : start + batch_size]))
        if on_progress is not None:
            on_progress(len(out) / total)
    return out


def answer_token_budget(records: Sequence[Mapping[str, Any]], *, floor: int = 32, ceiling: int = 1024) -> int:
    """A ``max_tokens`` for candidates from the teacher's answers: twice the longest one, within bounds.

    Without a cap an untrained model may ramble for hundreds of tokens on a one-word classification; with a cap
    derived from what the teacher actually answered, a correct answer always fits. Lengths come from the logged
    ``usage.completion_tokens`` when present, else from the answer's characters (about 3 per token).
    """
    longest = 0
    for record in records:
        response = record.get("response") or {}
        usage = response.get("usage") or {}
        tokens = usage.get("completion_tokens") if isinstance(usage, Mapping) else None
        if not isinstance(tokens, int):
            choices = response.get("choices") or [{}]
            message = choices[0].get("message") or {} if isinstance(choices[0], Mapping) else {}
            text = str(message.get("content") or "") + str(message.get("tool_calls") or "")
            tokens = len(text) // 3 + 1
        longest = max(longest, tokens)
    return max(floor, min(ceiling, 2 * longest + 16))


def run_evaluation(
    backend: InferenceBackend,
    records: Sequence[Mapping[str, Any]],
    settings: EvalSettings | None = None,
    *,
    judge: Judge | None = None,
    no_judge_reason: str = "no LLM judge configured (llm_judge_config is null)",
    candidate_model: str | None = None,
    on_progress: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> EvaluationResult:
    """Answer ``records`` (eval records, or ICL eval records for the few-shot eval) with the candidate and score
    the answers against the teacher's, judge calls included.

    ``on_progress`` receives the fraction done (0–1); ``should_stop`` is polled between batches (raises
    :class:`JobCancelled`). ``candidate_model`` defaults to ``backend.name``.
    """
    settings = settings or EvalSettings()
    records = records[: settings.limit] if settings.limit is not None else records
    max_tokens = settings.max_tokens if settings.max_tokens is not None else answer_token_budget(records)
    requests = candidate_requests(list(records), max_tokens=max_tokens)
    # Answering takes almost all the time; the last 5 % of the progress bar is the scoring.
    started = time.perf_counter()
    generations = generate_answers(
        backend,
        requests,
        batch_size=settings.batch_size,
        on_progress=(lambda f: on_progress(0.95 * f)) if on_progress else None,
        should_stop=should_stop,
    )
    generation_seconds = time.perf_counter() - started
    result = evaluate(
        records,
        generations,
        settings.workload_type,
        judge,
        candidate_model=candidate_model or backend.name,
        no_judge_reason=no_judge_reason,
        bootstrap_samples=settings.bootstrap_samples,
        confidence=settings.confidence,
        seed=settings.seed,
    )
    result.generation_seconds = generation_seconds
    if on_progress is not None:
        on_progress(1.0)
    return result
