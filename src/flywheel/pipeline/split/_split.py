"""Class-aware stratified split into eval / train / val that never fails on an awkward class layout.

scikit-learn's ``train_test_split`` does the stratified draw; before calling it we make sure its preconditions hold
(every stratum has two members, both sides at least as large as the number of strata) by pooling the rarest classes
into ``others``, and we fall back to a plain random draw when no stratification is possible. Every such decision is
recorded in :attr:`SplitResult.decisions`. A final repair step moves one member of each class that has at least two
records but none in train into train, swapping with a record whose class is well represented there, so sizes stay exact.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from flywheel.errors import DataError

OTHERS = "others"
UNLABELLED = "no_label"


@dataclass
class SplitResult:
    """Indices (into the input) of each split, the seed used, and what was done to get there."""

    eval: list[int]
    train: list[int]
    val: list[int]
    seed: int
    decisions: list[str] = field(default_factory=list)

    def class_counts(self, labels: Sequence[str | None]) -> dict[str, dict[str, int]]:
        """Class distribution per split."""
        return {
            name: dict(Counter(_name(labels[i]) for i in idx).most_common())
            for name, idx in (("eval", self.eval), ("train", self.train), ("val", self.val))
        }


def _name(label: str | None) -> str:
    return UNLABELLED if label is None else label


def planned_sizes(n: int, eval_size: int, val_ratio: float) -> tuple[int, int, int]:
    """``(eval, train, val)`` sizes for ``n`` records.

    eval = ``min(eval_size, n - 1)`` so that at least one record is left to train on (all of a single record goes to
    eval); val = ``ceil(val_ratio × rest)`` but never the whole rest; train = the remainder.
    """
    if n <= 0:
        return 0, 0, 0
    n_eval = min(eval_size, n - 1) if n > 1 else n
    rest = n - n_eval
    n_val = min(math.ceil(val_ratio * rest - 1e-9), max(rest - 1, 0)) if rest else 0
    return n_eval, rest - n_val, n_val


def _strata(
    labels: list[str], rare_class_threshold: int, min_samples: int, what: str
) -> tuple[list[str], list[str]]:
    """Pool classes with at most ``rare_class_threshold`` members (or fewer than ``min_samples``) into ``others``."""
    counts = Counter(labels)
    rare = {c for c, k in counts.items() if k <= rare_class_threshold or k < min_samples}
    notes = []
    if rare:
        notes.append(f"{what}: pooled {len(rare)} rare class(es) into '{OTHERS}'")
    return [OTHERS if lab in rare else lab for lab in labels], notes


def _stratifiable(strata: list[str], k: int) -> bool:
    counts = Counter(strata)
    n = len(strata)
    return len(counts) > 1 and min(counts.values()) >= 2 and k >= len(counts) and n - k >= len(counts)


def _take(
    indices: list[int],
    labels: list[str],
    k: int,
    seed: int,
    *,
    what: str,
    stratify: bool,
    rare_class_threshold: int,
    min_samples: int,
) -> tuple[list[int], list[int], list[str]]:
    """Draw ``k`` of ``indices`` (stratified when possible); return ``(taken, rest, decisions)``."""
    n = len(indices)
    if k <= 0:
        return [], list(indices), []
    if k >= n:
        return list(indices), [], []
    notes: list[str] = []
    if stratify:
        strata, notes = _strata(labels, rare_class_threshold, min_samples, what)
        # Coarsen the strata until sklearn's preconditions hold (or a single stratum is left): a lone 'others'
        # record joins the largest class; otherwise the smallest class joins 'others'.
        while not _stratifiable(strata, k) and len(set(strata)) > 1:
            counts = Counter(strata)
            if counts.get(OTHERS, 0) == 1:
                largest = max((c for c in counts if c != OTHERS), key=lambda c: (counts[c], c))
                strata = [largest if s == OTHERS else s for s in strata]
            else:
                smallest = min((c for c in counts if c != OTHERS), key=lambda c: (counts[c], c))
                strata = [OTHERS if s == smallest else s for s in strata]
            note = f"{what}: coarsened small classes to fit the split size"
            if note not in notes:
                notes.append(note)
        if _stratifiable(strata, k):
            rest, taken = train_test_split(indices, test_size=k, stratify=strata, random_state=seed)
            notes.append(f"{what}: stratified over {len(set(strata))} strata")
            return list(taken), list(rest), notes
        if len(set(strata)) <= 1:
            notes.append(f"{what}: random (a single class)")
        else:
            notes.append(f"{what}: random (stratification impossible for this class layout)")
    else:
        notes.append(f"{what}: random (stratification disabled)")
    rest, taken = train_test_split(indices, test_size=k, random_state=seed)
    return list(taken), list(rest), notes


def _repair_train_coverage(result: SplitResult, labels: list[str]) -> None:
    """Give every class with ≥ 2 records at least one train member, keeping the split sizes unchanged."""
    total = Counter(labels)
    in_train = Counter(labels[i] for i in result.train)
    moved = 0
    for cls in sorted(c for c, k in total.items() if k >= 2 and in_train[c] == 0):
        source = next(
            (s for s in (result.eval, result.val) if any(labels[i] == cls for i in s)),
            None,
        )
        if source is None:
            continue
        # Donor: a train record whose class keeps another train member, else a singleton class' record.
        donors = [j for j, i in enumerate(result.train) if in_train[labels[i]] > 1]
        if not donors:
            donors = [j for j, i in enumerate(result.train) if total[labels[i]] < 2]
        if not donors:
            continue
        donor_pos = max(donors, key=lambda j: (in_train[labels[result.train[j]]], -j))
        pos = next(p for p, i in enumerate(source) if labels[i] == cls)
        donor = result.train[donor_pos]
        result.train[donor_pos], source[pos] = source[pos], donor
        in_train[labels[donor]] -= 1
        in_train[cls] += 1
        moved += 1
    if moved:
        result.decisions.append(f"moved {moved} record(s) into train so that every class with 2+ records is in train")


def split_records(
    labels: Sequence[str | None],
    *,
    eval_size: int,
    val_ratio: float,
    seed: int | None = None,
    stratify: bool = True,
    rare_class_threshold: int = 1,
    min_samples_per_class: int = 2,
) -> SplitResult:
    """Split records, given their class labels (None = unlabelled), into eval / train / val index lists.

    Sizes are exactly :func:`planned_sizes`; the same ``seed`` and labels give the same split. ``seed=None`` draws
    a seed, which is returned so the split can be reproduced.
    """
    if not 0.0 <= val_ratio < 1.0:
        raise DataError(f"val_ratio must be in [0, 1), got {val_ratio}; set data_split_config.val_ratio accordingly.")
    if eval_size < 0:
        raise DataError(f"eval_size must not be negative, got {eval_size}.")
    used_seed = int(np.random.default_rng().integers(0, 2**31 - 1)) if seed is None else int(seed) % (2**32)
    names = [_name(lab) for lab in labels]
    n = len(names)
    n_eval, n_train, n_val = planned_sizes(n, eval_size, val_ratio)
    result = SplitResult(eval=[], train=[], val=[], seed=used_seed)
    if n_eval < min(eval_size, n):
        result.decisions.append(f"eval_size {eval_size} reduced to {n_eval} to keep at least one training record")
    common: dict[str, Any] = {
        "stratify": stratify,
        "rare_class_threshold": rare_class_threshold,
        "min_samples": min_samples_per_class,
    }
    everything = list(range(n))
    result.eval, rest, notes = _take(everything, names, n_eval, used_seed, what="eval", **common)
    result.decisions += notes
    result.val, result.train, notes = _take(rest, [names[i] for i in rest], n_val, used_seed, what="val", **common)
    result.decisions += notes
    _repair_train_coverage(result, names)
    assert (len(result.eval), len(result.train), len(result.val)) == (n_eval, n_train, n_val)
    return result
