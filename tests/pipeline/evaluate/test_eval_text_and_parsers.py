"""Judge-free text metrics and the judge reply parsers."""

from __future__ import annotations

import pytest

from flywheel.pipeline.evaluate import parse_binary_rating, parse_similarity, rouge_l, token_f1


def test_rouge_l_and_token_f1_hand_values() -> None:
    assert rouge_l("the cat sat on the mat", "the cat on the mat") == pytest.approx(10 / 11)
    assert token_f1("the cat sat on the mat", "the cat on the mat") == pytest.approx(10 / 11)
    # same bag of words, reversed order: token F1 is perfect, ROUGE-L sees one common subsequence token
    assert token_f1("a b c d", "d c b a") == 1.0
    assert rouge_l("a b c d", "d c b a") == pytest.approx(0.25)


def test_text_metrics_on_empty_answers() -> None:
    assert rouge_l("", "") == 1.0 and token_f1(None, "") == 1.0
    assert rouge_l("some answer", "") == 0.0 and token_f1("some answer", None) == 0.0
    assert rouge_l("abc", "xyz") == 0.0


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("10", 1.0),
        ("7", 0.7),
        ("1", 0.1),
        ("Rating: 7/10", 0.7),
        ("10/10", 1.0),
        ("**8**", 0.8),
        ("Similarity: 9", 0.9),
        ("Score: 10", 1.0),
        ("I would rate this 6 out of 10 because the key facts match.", 0.6),
        ("The answers differ in tone only; 9.", 0.9),
    ],
)
def test_similarity_parser_reads_1_to_10(reply: str, score: float) -> None:
    grade = parse_similarity(reply)
    assert grade.score == pytest.approx(score)
    assert grade.raw_grade == pytest.approx(score * 10)


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ("", "empty"),
        ("The candidate looks fine to me.", "no 1–10 rating"),
        ("0", "outside"),
        ("11", "outside"),
        ("Score: 15", "outside"),
        ("Somewhere between 3 and 5.", "ambiguous"),
    ],
)
def test_similarity_parser_gives_no_grade_with_a_reason(reply: str, why: str) -> None:
    grade = parse_similarity(reply)
    assert grade.score is None
    assert grade.explanation is not None and why in grade.explanation


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("RATING: 1\nEXPLANATION: same call", 1.0),
        ("**RATING:** 0\nEXPLANATION: wrong city", 0.0),
        ("rating=1", 1.0),
        ("1", 1.0),
        ("0", 0.0),
    ],
)
def test_binary_rating_parser(reply: str, score: float) -> None:
    assert parse_binary_rating(reply).score == score


def test_binary_rating_keeps_the_explanation() -> None:
    assert parse_binary_rating("RATING: 0\nEXPLANATION: wrong city").explanation == "wrong city"


@pytest.mark.parametrize("reply", ["", "looks right to me", "RATING: 5", "RATING: maybe"])
def test_binary_rating_parser_no_grade(reply: str) -> None:
    grade = parse_binary_rating(reply)
    assert grade.score is None and grade.explanation
