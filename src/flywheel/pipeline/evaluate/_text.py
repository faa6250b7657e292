"""Judge-free text overlap metrics for generic workloads: token F1 and ROUGE-L (F-measure).

Both tokenise the same way: lower-cased runs of letters/digits (Unicode ``\\w``). Two empty answers score 1, one
empty answer scores 0.
"""

from __future__ import annotations

import re
from collections import Counter

_TOKEN = re.compile(r"\w+", re.UNICODE)


def tokenize(text: str | None) -> list[str]:
    """Lower-cased word tokens."""
    return _TOKEN.findall((text or "").lower())


def token_f1(reference: str | None, candidate: str | None) -> float:
    """SQuAD-style bag-of-tokens F1 between a reference and a candidate."""
    ref, cand = tokenize(reference), tokenize(candidate)
    if not ref and not cand:
        return 1.0
    if not ref or not cand:
        return 0.0
    overlap = sum((Counter(ref) & Counter(cand)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(cand), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


def _lcs_length(a: list[str], b: list[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(reference: str | None, candidate: str | None) -> float:
    """ROUGE-L F-measure (β = 1): ``2·P·R/(P+R)`` with ``P = LCS/len(candidate)``, ``R = LCS/len(reference)``."""
    ref, cand = tokenize(reference), tokenize(candidate)
    if not ref and not cand:
        return 1.0
    if not ref or not cand:
        return 0.0
    lcs = _lcs_length(ref, cand)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(cand), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)
