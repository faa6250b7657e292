"""Scorers: each workload type's metrics, judge rule and headline metric, declared once and used by evaluate()."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from factories import chat_record
from flywheel.backends import ChatRequest, Generation
from flywheel.errors import DataError
from flywheel.pipeline.evaluate import (
    JUDGE_METRICS,
    METRICS,
    SCORERS,
    WORKLOAD_TYPES,
    Judge,
    SimilarityScorer,
    evaluate,
    scorer_for,
)
from flywheel.pipeline.evaluate._answers import Answer
from flywheel.pipeline.evaluate._judge import Grade, JudgeItem
from flywheel.pipeline.evaluate._results import SampleEvidence
from flywheel.pipeline.evaluate._scorers import JudgeRule, grade_with_judge


class CountingJudgeBackend:
    """An in-process judge that answers every request with ``reply`` and keeps the requests it got."""

    name = "judge-model"

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.requests: list[ChatRequest] = []

    def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        self.requests.extend(requests)
        return [Generation(content=self.reply) for _ in requests]

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("workload_type", "tool_eval_type", "reason"),
    [
        ("classification", "tool-calling-judge", "classification is scored without a judge"),
        ("classification", "tool-calling-metric", "classification is scored without a judge"),
        ("tool_calling", "tool-calling-metric", "evaluation_config.tool_eval_type is tool-calling-metric"),
        ("tool_calling", "tool-calling-judge", None),
        ("generic", "tool-calling-metric", None),
        ("generic", "tool-calling-judge", None),
    ],
)
def test_no_judge_reason_says_why_a_workload_is_scored_without_a_judge(
    workload_type: str, tool_eval_type: str, reason: str | None
) -> None:
    assert scorer_for(workload_type).no_judge_reason(tool_eval_type=tool_eval_type) == reason


def test_only_workloads_with_a_judge_metric_need_a_judge() -> None:
    assert not scorer_for("classification").needs_judge
    assert scorer_for("classification").judge_metrics == frozenset()
    assert scorer_for("tool_calling").judge_metrics == {"tool_calling_correctness"}
    assert scorer_for("generic").judge_metrics == {"similarity"}
    assert scorer_for("tool_calling").needs_judge and scorer_for("generic").needs_judge


@pytest.mark.parametrize(
    ("workload_type", "computed", "primary"),
    [
        ("classification", [], "f1_score"),
        ("classification", ["accuracy"], "f1_score"),
        ("tool_calling", ["function_name", "tool_calling_correctness"], "function_name_and_args_accuracy"),
        ("generic", ["similarity", "rouge_l", "token_f1"], "similarity"),
        ("generic", ["rouge_l", "token_f1"], "rouge_l"),  # no judge graded
        ("generic", ["token_f1"], "similarity"),  # neither computed: the reference key
        ("generic", [], "similarity"),
    ],
)
def test_the_primary_metric_is_declared_by_the_scorer(
    workload_type: str, computed: list[str], primary: str
) -> None:
    assert scorer_for(workload_type).primary_metric(computed) == primary


def test_the_exported_metric_tables_are_read_off_the_scorers() -> None:
    assert tuple(SCORERS) == WORKLOAD_TYPES == ("classification", "tool_calling", "generic")
    assert (
        {name: s.metrics for name, s in SCORERS.items()}
        == METRICS
        == {
            "classification": ("f1_score", "accuracy", "f1_weighted"),
            "tool_calling": (
                "function_name",
                "function_name_and_args_accuracy",
                "function_args_f1",
                "tool_calling_correctness",
            ),
            "generic": ("similarity", "rouge_l", "token_f1"),
        }
    )
    assert frozenset().union(*(s.judge_metrics for s in SCORERS.values())) == JUDGE_METRICS
    assert {"tool_calling_correctness", "similarity"} == JUDGE_METRICS


@pytest.mark.parametrize("workload_type", ["auto", "ranking", ""])
def test_scorer_for_refuses_anything_but_a_decided_workload_type(workload_type: str) -> None:
    with pytest.raises(DataError, match="Unknown workload type"):
        scorer_for(workload_type)


def test_a_judge_given_for_classification_is_neither_called_nor_named() -> None:
    backend = CountingJudgeBackend("10")
    records = [chat_record("q", "[[a]]", record_id="r0")]
    result = evaluate(
        records, [Generation(content="[[a]]")], "classification", Judge(backend, model_name="j")
    )
    assert backend.requests == [] and result.judge_model is None


def _sample(index: int, candidate: str) -> SampleEvidence:
    return SampleEvidence(index, f"r{index}", "q", Answer(content="ref"), Answer(content=candidate))


def test_grade_with_judge_asks_only_for_undecided_samples_and_records_both_kinds() -> None:
    rule = JudgeRule(
        SimilarityScorer(),
        decide=lambda s: Grade(0.3, 3.0, "settled by rule") if s.candidate.content == "x" else None,
        item=lambda s, record: JudgeItem([], s.teacher, s.candidate),
    )
    samples = [_sample(0, "x"), _sample(1, "y"), _sample(2, "z")]
    samples[2].skipped_reason = "skipped earlier"
    backend = CountingJudgeBackend("Rating: 8/10")
    grade_with_judge(Judge(backend, model_name="j"), rule, samples, [{}, {}, {}])
    assert len(backend.requests) == 1  # the decided and the skipped sample cost no call
    assert samples[0].scores == {"similarity": 0.3}
    assert samples[0].judge[0].decided_without_judge and samples[0].judge[0].raw_grade == 3.0
    assert samples[0].judge[0].judge_model == "j"
    assert samples[1].scores == {"similarity": pytest.approx(0.8)}
    assert not samples[1].judge[0].decided_without_judge and samples[1].judge[0].reply == "Rating: 8/10"
    assert samples[2].scores == {} and samples[2].judge == []
