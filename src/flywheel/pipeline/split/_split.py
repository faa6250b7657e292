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
OTHERS_CODE = -1  # the 'others' stratum among integer class codes
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
    labels: list[int], rare_class_threshold: int, min_samples: int, what: str
) -> tuple[list[int], list[str]]:
    """Pool classes with at most ``rare_class_threshold`` members (or fewer than ``min_samples``) into ``others``."""
    counts = Counter(labels)
    rare = {c for c, k in counts.items() if k <= rare_class_threshold or k < min_samples}
    notes = []
    if rare:
        notes.append(f"{what}: pooled {len(rare)} rare class(es) into '{OTHERS}'")
    return [OTHERS_CODE if lab in rare else lab for lab in labels], notes


def _stratifiable_counts(counts: Counter[int], n: int, k: int) -> bool:
    return len(counts) > 1 and min(counts.values()) >= 2 and k >= len(counts) and n - k >= len(counts)


def _coarsen(strata: list[int], k: int) -> tuple[list[int], bool]:
    """Merge strata until sklearn's preconditions hold or one stratum is left; True if anything was merged.

    The smallest class joins ``others`` (classes in ascending size order); a lone ``others`` record joins the
    largest class. Each step is O(1), so this stays fast with tens of thousands of classes.
    """
    counts = Counter(strata)
    n = len(strata)
    others = counts.pop(OTHERS_CODE, 0)
    order = sorted(counts, key=lambda c: (counts[c], c))  # ascending; only the last one ever grows
    lo, hi = 0, len(order) - 1
    target_of: dict[int, int] = {}
    others_members: list[int] = [OTHERS_CODE] if others else []

    def ok() -> bool:
        n_strata = (hi - lo + 1) + (1 if others else 0)
        smallest = min(counts[order[lo]] if lo <= hi else n, others if others else n)
        return n_strata > 1 and smallest >= 2 and k >= n_strata and n - k >= n_strata

    merged = False
    while not ok() and (hi - lo + 1) + (1 if others else 0) > 1:
        merged = True
        if others == 1 and lo <= hi:
            largest = order[hi]
            counts[largest] += 1
            for member in others_members:
                target_of[member] = largest
            others_members, others = [], 0
        else:
            smallest = order[lo]
            lo += 1
            others += counts[smallest]
            others_members.append(smallest)
    if not merged:
        return strata, False
    for member in others_members:
        target_of[member] = OTHERS_CODE
    return [target_of.get(c, c) for c in strata], True


def _take(
    indices: list[int],
    labels: list[int],
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
        strata, merged = _coarsen(strata, k)
        if merged:
            notes.append(f"{what}: coarsened small classes to fit the split size")
        n_strata = len(set(strata))
        if _stratifiable_counts(Counter(strata), n, k):
            rest, taken = train_test_split(
                np.asarray(indices), test_size=k, stratify=np.asarray(strata), random_state=seed
            )
            notes.append(f"{what}: stratified over {n_strata} strata")
            return taken.tolist(), rest.tolist(), notes
        if n_strata <= 1:
            notes.append(f"{what}: random (a single class)")
        else:
            notes.append(f"{what}: random (stratification impossible for this class layout)")
    else:
        notes.append(f"{what}: random (stratification disabled)")
    rest, taken = train_test_split(np.asarray(indices), test_size=k, random_state=seed)
    return taken.tolist(), rest.tolist(), notes


def _repair_train_coverage(result: SplitResult, labels: list[int]) -> None:
    """Give every class with ≥ 2 records at least one train member, keeping the split sizes unchanged.

    Each missing class swaps one of its eval/val records with a train record whose class keeps another train
    member (the best represented first), else with a record of a singleton class. Linear in the number of records.
    """
    total = Counter(labels)
    in_train = Counter(labels[i] for i in result.train)
    missing = sorted(c for c, k in total.items() if k >= 2 and in_train[c] == 0)
    if not missing:
        return
    # Where each missing class sits outside train: (split list, position in it).
    wanted = set(missing)
    outside: dict[int, tuple[list[int], int]] = {}
    for source in (result.eval, result.val):
        for pos, i in enumerate(source):
            if labels[i] in wanted and labels[i] not in outside:
                outside[labels[i]] = (source, pos)
    rich = sorted(range(len(result.train)), key=lambda j: -in_train[labels[result.train[j]]])
    singles = [j for j in range(len(result.train)) if total[labels[result.train[j]]] < 2]
    r = s = 0
    moved = 0
    for cls in missing:
        if cls not in outside:
            continue
        while r < len(rich) and in_train[labels[result.train[rich[r]]]] <= 1:
            r += 1
        if r < len(rich):
            donor_pos = rich[r]
            r += 1
        elif s < len(singles):
            donor_pos = singles[s]
            s += 1
        else:
            break
        source, pos = outside[cls]
        donor = result.train[donor_pos]
        result.train[donor_pos], source[pos] = source[pos], donor
        in_train[labels[donor]] -= 1
        in_train[cls] += 1
        moved += 1
    if moved:
        result.decisions.append(
            f"moved {moved} record(s) into train so that every class with 2+ records is in train"
        )


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
        raise DataError(
            f"val_ratio must be in [0, 1), got {val_ratio}; set data_split_config.val_ratio accordingly."
        )
    if eval_size < 0:
        raise DataError(f"eval_size must not be negative, got {eval_size}.")
    used_seed = int(np.random.default_rng().integers(0, 2**31 - 1)) if seed is None else int(seed) % (2**32)
    # Work on small integer class codes (first-appearance order): hashing and sorting ints is much cheaper than
    # strings on millions of records, and the order keeps tie-breaks deterministic.
    code_of: dict[str | None, int] = {}
    names = [code_of.setdefault(lab, len(code_of)) for lab in labels]
    n = len(names)
    n_eval, n_train, n_val = planned_sizes(n, eval_size, val_ratio)
    result = SplitResult(eval=[], train=[], val=[], seed=used_seed)
    if n_eval < min(eval_size, n):
        result.decisions.append(
            f"eval_size {eval_size} reduced to {n_eval} to keep at least one training record"
        )
    common: dict[str, Any] = {
        "stratify": stratify,
        "rare_class_threshold": rare_class_threshold,
        "min_samples": min_samples_per_class,
    }
    everything = list(range(n))
    result.eval, rest, notes = _take(everything, names, n_eval, used_seed, what="eval", **common)
    result.decisions += notes
    result.val, result.train, notes = _take(
        rest, [names[i] for i in rest], n_val, used_seed, what="val", **common
    )
    result.decisions += notes
    _repair_train_coverage(result, names)
    assert (len(result.eval), len(result.train), len(result.val)) == (n_eval, n_train, n_val)
    return result
