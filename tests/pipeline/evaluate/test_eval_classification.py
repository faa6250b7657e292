"""Classification labels and metrics, with hand-computed values."""

from __future__ import annotations

import random

import pytest
from sklearn.metrics import f1_score as sk_f1

from flywheel.pipeline.evaluate import NO_LABEL, classification_report, extract_label


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ("[[[Sports]]]", "sports"),
        ("The category is [[ World  News ]].", "world news"),
        ("**[[tech]]**", "tech"),
        ("[[a]] and later [[b]]", "a"),
        ("Sports.", "sports"),  # no brackets: the whole answer, normalised
        ("  'Business'  ", "business"),
        ("", None),
        ("   \n", None),
        (None, None),
    ],
)
def test_label_extraction(answer: str | None, label: str | None) -> None:
    assert extract_label(answer) == label


def test_report_matches_hand_computed_values_with_unknown_and_missing_labels() -> None:
    teacher = ["a", "a", "b", "b", "c"]
    candidate = ["a", "b", "b", "zzz", None]  # zzz: not a teacher label; None: empty answer
    report = classification_report(teacher, candidate)
    per = {c.label: c for c in report.per_class}
    assert (per["a"].precision, per["a"].recall, per["a"].f1, per["a"].support) == (
        1.0,
        0.5,
        pytest.approx(2 / 3),
        2,
    )
    assert (per["b"].precision, per["b"].recall, per["b"].f1, per["b"].support) == (0.5, 0.5, 0.5, 2)
    assert (per["c"].precision, per["c"].recall, per["c"].f1, per["c"].support) == (0.0, 0.0, 0.0, 1)
    assert report.macro_f1 == pytest.approx(7 / 18)  # (2/3 + 1/2 + 0) / 3: unknown labels add no class
    assert report.weighted_f1 == pytest.approx(7 / 15)  # (2·2/3 + 2·1/2 + 1·0) / 5
    assert report.accuracy == pytest.approx(0.4)
    assert report.labels == ["a", "b", "c"]
    assert report.predicted_labels == ["a", "b", "c", "zzz", NO_LABEL]
    assert report.confusion_matrix == [[1, 1, 0, 0, 0], [0, 1, 0, 1, 0], [0, 0, 0, 0, 1]]


def test_perfect_and_all_wrong_predictions() -> None:
    assert classification_report(["x", "y"], ["x", "y"]).macro_f1 == 1.0
    wrong = classification_report(["x", "y"], [None, None])
    assert (wrong.macro_f1, wrong.accuracy) == (0.0, 0.0)


def test_empty_input_gives_an_empty_report_not_an_error() -> None:
    report = classification_report([], [])
    assert report.n == 0 and report.per_class == []


def test_macro_f1_agrees_with_scikit_learn_over_the_teacher_label_set() -> None:
    rng = random.Random(7)
    labels = ["a", "b", "c", "d"]
    for _ in range(20):
        n = rng.randint(1, 40)
        teacher = [rng.choice(labels[:3]) for _ in range(n)]
        candidate = [rng.choice([*labels, None]) for _ in range(n)]
        ours = classification_report(teacher, candidate)
        teacher_set = sorted(set(teacher))
        preds = [c if c is not None else "<none>" for c in candidate]
        expected_macro = sk_f1(teacher, preds, labels=teacher_set, average="macro", zero_division=0)
        expected_weighted = sk_f1(teacher, preds, labels=teacher_set, average="weighted", zero_division=0)
        assert ours.macro_f1 == pytest.approx(expected_macro)
        assert ours.weighted_f1 == pytest.approx(expected_weighted)
