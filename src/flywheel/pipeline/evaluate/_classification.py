"""Classification metrics: labels from ``[[…]]`` answers, accuracy, macro/weighted F1, per-class scores, confusion.

Definitions (these are what the report's numbers mean):

* **Label** of an answer: the text inside the first ``[[…]]`` (any number of brackets ≥ 2, e.g. ``[[[sports]]]``),
  normalised; if the answer has no brackets, the whole answer normalised. Normalised = lower-cased, inner whitespace
  collapsed, surrounding whitespace/quotes/``*``/``.``/``:`` stripped. An empty or missing answer has **no label**.
* **Teacher label set** ``L`` = the distinct labels of the teacher's answers in the eval set. Eval records whose teacher
  answer has no label cannot be scored and are skipped (counted).
* A candidate label that is not in ``L``, or no label at all, is simply a wrong prediction: it counts against the
  recall of the true class and adds no class of its own.
* ``accuracy`` = share of samples whose candidate label equals the teacher label.
* ``f1_score`` = **macro-F1 over L**: the unweighted mean over the classes in ``L`` of
  ``F1_c = 2·P_c·R_c / (P_c + R_c)``, with ``P_c = TP_c / (samples predicted c)`` and ``R_c = TP_c / (samples of c)``,
  and ``0`` where a denominator is ``0`` (same as scikit-learn's ``f1_score(..., labels=L, average="macro",
  zero_division=0)``).
* ``f1_weighted`` = the per-class F1 averaged with weights equal to each class's teacher support.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: Column name used in the confusion matrix for candidate answers with no label.
NO_LABEL = "<no label>"

_BRACKETS = re.compile(r"\[\[+\s*(.*?)\s*\]\]+", re.DOTALL)
_STRIP = " \t\r\n\"'`*.:;,"


def normalize_label(text: str) -> str:
    """Lower-case, collapse inner whitespace, strip surrounding whitespace, quotes, ``*``, ``.``, ``:``."""
    return " ".join(text.lower().split()).strip(_STRIP)


def bracket_label(text: str | None) -> str | None:
    """The normalised text inside the first ``[[…]]`` of ``text``; ``None`` if there is none or it is empty."""
    if not text:
        return None
    for match in _BRACKETS.finditer(text):
        label = normalize_label(match.group(1).strip("[]"))
        if label:
            return label
    return None


def extract_label(text: str | None) -> str | None:
    """An answer's label: the first ``[[…]]`` content, else the whole answer, normalised; ``None`` if empty."""
    label = bracket_label(text)
    if label is not None:
        return label
    if not text:
        return None
    whole = normalize_label(text)
    return whole or None


@dataclass(frozen=True)
class ClassScores:
    """Precision, recall and F1 of one teacher class, with its support (teacher samples of that class)."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ClassificationReport:
    """Corpus-level classification metrics (see the module docstring for definitions)."""

    n: int
    accuracy: float
    macro_f1: float
    weighted_f1: float
    per_class: list[ClassScores]
    labels: list[str]
    predicted_labels: list[str]
    confusion_matrix: list[list[int]]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: per-class scores keyed by label, and the confusion matrix with its row/column labels."""
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "f1_macro": self.macro_f1,
            "f1_weighted": self.weighted_f1,
            "per_class": {
                c.label: {"precision": c.precision, "recall": c.recall, "f1": c.f1, "support": c.support}
                for c in self.per_class
            },
            "confusion_matrix": {
                "rows": self.labels,
                "columns": self.predicted_labels,
                "counts": self.confusion_matrix,
            },
        }


def encode_labels(
    teacher: Sequence[str], candidate: Sequence[str | None]
) -> tuple[list[str], NDArray[np.int64], NDArray[np.int64]]:
    """Teacher label set (sorted) and integer codes; candidate labels outside the set get code ``len(labels)``."""
    labels = sorted(set(teacher))
    index = {label: i for i, label in enumerate(labels)}
    other = len(labels)
    y_true = np.array([index[t] for t in teacher], dtype=np.int64)
    y_pred = np.array([index.get(c, other) if c is not None else other for c in candidate], dtype=np.int64)
    return labels, y_true, y_pred


def _per_class(
    y_true: NDArray[np.int64], y_pred: NDArray[np.int64], k: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """Per-class precision, recall, F1 and support over codes ``0..k-1`` (code ``k`` = outside the label set)."""
    matrix = np.bincount(y_true * (k + 1) + y_pred, minlength=k * (k + 1)).reshape(k, k + 1)
    tp = np.diag(matrix[:, :k]).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix[:, :k].sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        recall = np.where(support > 0, tp / np.maximum(support, 1), 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1.0), 0.0)
    return precision, recall, f1, support


def macro_f1_codes(y_true: NDArray[np.int64], y_pred: NDArray[np.int64], k: int) -> float:
    """Macro-F1 over the classes that occur in ``y_true`` (codes ``0..k-1``)."""
    _, _, f1, support = _per_class(y_true, y_pred, k)
    present = support > 0
    return float(f1[present].mean()) if present.any() else 0.0


def weighted_f1_codes(y_true: NDArray[np.int64], y_pred: NDArray[np.int64], k: int) -> float:
    """Support-weighted F1 over the classes that occur in ``y_true``."""
    _, _, f1, support = _per_class(y_true, y_pred, k)
    total = support.sum()
    return float((f1 * support).sum() / total) if total else 0.0


#: The corpus-level metrics, by key, as functions of label codes ``(y_true, y_pred, k)``: their intervals recompute
#: them on every resample (the other classification metrics are means of per-sample scores).
LABEL_STATISTICS: dict[str, Callable[[NDArray[np.int64], NDArray[np.int64], int], float]] = {
    "f1_score": macro_f1_codes,
    "f1_weighted": weighted_f1_codes,
}


def classification_report(teacher: Sequence[str], candidate: Sequence[str | None]) -> ClassificationReport:
    """All classification metrics for aligned teacher and candidate labels (``None`` = no label)."""
    if len(teacher) != len(candidate):
        raise ValueError("teacher and candidate label lists differ in length")
    if not teacher:
        return ClassificationReport(0, 0.0, 0.0, 0.0, [], [], [], [])
    labels, y_true, y_pred = encode_labels(teacher, candidate)
    k = len(labels)
    precision, recall, f1, support = _per_class(y_true, y_pred, k)
    extra = sorted({c for c in candidate if c is not None and c not in set(labels)})
    columns = labels + extra + ([NO_LABEL] if any(c is None for c in candidate) else [])
    col_index = {label: i for i, label in enumerate(columns)}
    matrix = [[0] * len(columns) for _ in labels]
    for t, c in zip(y_true.tolist(), candidate, strict=True):
        matrix[t][col_index[c if c is not None else NO_LABEL]] += 1
    return ClassificationReport(
        n=len(teacher),
        accuracy=float(np.mean(y_true == y_pred)),
        macro_f1=float(f1.mean()),
        weighted_f1=float((f1 * support).sum() / support.sum()),
        per_class=[
            ClassScores(label, float(p), float(r), float(f), int(s))
            for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        ],
        labels=labels,
        predicted_labels=columns,
        confusion_matrix=matrix,
    )
