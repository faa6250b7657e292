"""Few-shot evaluation sets: ``uniform_distribution`` and ``semantic_similarity`` example selection (spec §7.8)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypedDict

import numpy as np

from flywheel.backends._types import EmbeddingBackend
from flywheel.config import ICLConfig
from flywheel.errors import ConfigError
from flywheel.pipeline.icl._examples import (
    Example,
    Record,
    Tokenizer,
    available_tokens,
    fit_examples,
    inject_examples,
    last_user_query,
    make_example,
    uniform_bins,
)
from flywheel.pipeline.icl._index import VectorIndex


class _ICLSelection(TypedDict):
    selection: str


# ``total=False`` on a subclass rather than ``NotRequired``: under ``from __future__ import annotations`` Python 3.11
# cannot see ``NotRequired`` in the string annotations, and ``__required_keys__`` would be wrong at run time.
class ICLSummary(_ICLSelection, total=False):
    """What the few-shot step did, for the manifest (:meth:`ICLStats.as_dict`); only ``selection`` and
    ``skipped: true`` when the step did not run."""

    skipped: bool
    records: int
    with_examples: int
    examples_injected: int
    mean_examples: float
    below_min_examples: int
    no_budget: int
    pool_size: int


@dataclass
class ICLStats:
    """What the few-shot step did, for the manifest."""

    selection: str
    records: int = 0
    with_examples: int = 0
    examples_injected: int = 0
    below_min_examples: int = 0
    no_budget: int = 0
    pool_size: int = 0
    groups: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> ICLSummary:
        """Stats for the manifest."""
        return {
            "selection": self.selection,
            "records": self.records,
            "with_examples": self.with_examples,
            "examples_injected": self.examples_injected,
            "mean_examples": round(self.examples_injected / self.records, 4) if self.records else 0.0,
            "below_min_examples": self.below_min_examples,
            "no_budget": self.no_budget,
            "pool_size": self.pool_size,
        }


def _group(examples: Sequence[Example]) -> dict[str, list[Example]]:
    groups: dict[str, list[Example]] = {}
    for example in examples:
        groups.setdefault(example.group, []).append(example)
    return groups


def uniform_groups(
    examples: Sequence[Example], max_examples: int, workload_type: str
) -> dict[str, list[Example]]:
    """The same examples for every prompt: the shortest of each tool (tool-calling) or overall (otherwise)."""
    if workload_type == "tool_calling":
        groups = _group(examples)
        bins = uniform_bins(max_examples, len(groups))
        return {
            name: sorted(group, key=lambda e: e.tokens)[:size]
            for (name, group), size in zip(groups.items(), bins, strict=True)
            if size > 0
        }
    shortest = sorted(examples, key=lambda e: e.tokens)[:max_examples]
    return {"generic_examples": shortest} if shortest else {}


def relevance_coverage(
    ranked: Sequence[Example], max_examples: int, relevance_ratio: float
) -> dict[str, list[Example]]:
    """Tool-calling pick from candidates in rank order: the ``floor(max × ratio)`` most similar, then coverage.

    Coverage first takes the best candidate of each tool not yet chosen, then fills any remaining slots with the
    best unused candidates. Grouped by tool in order of first choice.
    """
    n_relevant = int(max_examples * relevance_ratio)
    chosen = list(ranked[:n_relevant])
    rest = list(ranked[n_relevant:])
    slots = max_examples - len(chosen)
    covered = {e.group for e in chosen}
    for example in rest:
        if slots <= 0:
            break
        if example.group not in covered:
            chosen.append(example)
            covered.add(example.group)
            slots -= 1
    for example in rest:
        if slots <= 0:
            break
        if example not in chosen:
            chosen.append(example)
            slots -= 1
    return _group(chosen)


def build_icl_records(
    eval_records: Sequence[Record],
    train_pool: Sequence[Record],
    icl: ICLConfig,
    *,
    workload_type: str,
    embedder: EmbeddingBackend | None = None,
    tokenizer: Tokenizer | None = None,
) -> tuple[list[Record], ICLStats]:
    """One ICL-augmented copy of each eval record (same order, same count) and what was done.

    Examples come from ``train_pool`` (validated train records, never eval ones). Records whose prompt leaves no
    budget, or for which no example fits, are passed through unchanged.
    """
    stats = ICLStats(selection=icl.example_selection, records=len(eval_records), pool_size=len(train_pool))
    examples = [make_example(r, tokenizer) for r in train_pool]
    per_record: list[dict[str, list[Example]]]
    if icl.max_examples == 0 or not examples:
        per_record = [{} for _ in eval_records]
    elif icl.example_selection == "uniform_distribution":
        same = uniform_groups(examples, icl.max_examples, workload_type)
        per_record = [same for _ in eval_records]
    else:
        if embedder is None:
            raise ConfigError(
                "icl_config.example_selection is semantic_similarity but no embedding backend was given; "
                "configure icl_config.similarity_config.embedding_nim_config or use uniform_distribution"
            )
        ratio = icl.similarity_config.relevance_ratio if icl.similarity_config else 0.7
        per_record = _semantic_groups(
            eval_records, train_pool, examples, icl.max_examples, ratio, workload_type, embedder
        )
    out = []
    for record, groups in zip(eval_records, per_record, strict=True):
        budget = available_tokens(record, icl.max_context_length, icl.reserved_tokens, tokenizer)
        if budget <= 0:
            stats.no_budget += 1
            out.append(record)
            continue
        chosen = fit_examples(groups, budget, icl.max_examples)
        if len(chosen) < icl.min_examples:
            stats.below_min_examples += 1
        if chosen:
            stats.with_examples += 1
            stats.examples_injected += len(chosen)
        out.append(inject_examples(record, chosen))
    return out, stats


def _semantic_groups(
    eval_records: Sequence[Record],
    train_pool: Sequence[Record],
    examples: list[Example],
    max_examples: int,
    relevance_ratio: float,
    workload_type: str,
    embedder: EmbeddingBackend,
) -> list[dict[str, list[Example]]]:
    pool_queries = [last_user_query(r) for r in train_pool]
    pool_keep = [i for i, q in enumerate(pool_queries) if q]
    eval_queries = [last_user_query(r) for r in eval_records]
    eval_keep = [i for i, q in enumerate(eval_queries) if q]
    result: list[dict[str, list[Example]]] = [{} for _ in eval_records]
    if not pool_keep or not eval_keep:
        return result
    index = VectorIndex(np.asarray(embedder.embed([pool_queries[i] or "" for i in pool_keep])))
    queries = np.asarray(embedder.embed([eval_queries[i] or "" for i in eval_keep]))
    k = 5 * max_examples if workload_type == "tool_calling" else max_examples
    _, hits = index.search(queries, k)
    for row, record_pos in enumerate(eval_keep):
        ranked = [examples[pool_keep[j]] for j in hits[row]]
        if workload_type == "tool_calling":
            result[record_pos] = relevance_coverage(ranked, max_examples, relevance_ratio)
        else:
            result[record_pos] = {"generic_examples": ranked[:max_examples]}
    return result
