"""evaluate(): scores, intervals, "not computed" judge metrics, evidence, usage, paired comparison."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from factories import chat_record, tool_call
from flywheel.backends import ChatRequest, Generation
from flywheel.errors import DataError
from flywheel.pipeline.evaluate import Judge, compare, evaluate


class ScriptedJudgeBackend:
    """An in-process InferenceBackend whose replies come from a function of the request (for unit tests)."""

    name = "judge-model"

    def __init__(self, reply: Callable[[ChatRequest], str]) -> None:
        self.reply = reply
        self.requests: list[ChatRequest] = []

    def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        self.requests.extend(requests)
        return [Generation(content=self.reply(r)) for r in requests]

    def close(self) -> None:
        pass


def classification_set() -> tuple[list[dict[str, Any]], list[Generation]]:
    teacher = ["[[a]]", "[[a]]", "[[b]]", "[[b]]", "[[c]]"]
    candidate = ["[[a]]", "The answer is [[b]].", "b", "[[zzz]]", ""]
    records = [chat_record(f"q{i}", t, record_id=f"r{i}") for i, t in enumerate(teacher)]
    gens = [
        Generation(content=c, latency_s=0.1 * (i + 1), prompt_tokens=12, completion_tokens=4)
        for i, c in enumerate(candidate)
    ]
    return records, gens


def test_classification_scores_carry_n_and_intervals() -> None:
    records, gens = classification_set()
    result = evaluate(records, gens, "classification", bootstrap_samples=200)
    assert result.scores["f1_score"] == pytest.approx(7 / 18)
    assert result.scores["accuracy"] == pytest.approx(0.4)
    assert result.scores["f1_weighted"] == pytest.approx(7 / 15)
    f1 = result.metrics["f1_score"]
    assert f1.n == 5 and f1.ci_low is not None and f1.ci_high is not None
    assert f1.ci_low <= f1.value <= f1.ci_high  # type: ignore[operator]
    assert result.samples[1].labels == {"teacher": "a", "candidate": "b"}
    assert result.samples[4].scores["accuracy"] == 0.0  # empty answer: wrong, no crash


def test_auto_detects_classification_and_the_json_is_serialisable() -> None:
    records, gens = classification_set()
    result = evaluate(records, gens, bootstrap_samples=100)
    assert result.workload_type == "classification"
    data = json.loads(json.dumps(result.to_json()))
    assert data["metrics"]["f1_score"]["n"] == 5
    assert set(data["metrics"]["f1_score"]) >= {"value", "n", "ci_low", "ci_high", "status"}
    assert data["classification"]["confusion_matrix"]["columns"][-1] == "<no label>"
    sample = data["samples"][0]
    assert sample["record_id"] == "r0"
    assert sample["prompt_excerpt"] == "q0"
    assert sample["teacher"]["content"] == "[[a]]" and sample["candidate"]["content"] == "[[a]]"
    assert sample["scores"] == {"accuracy": 1.0}


def test_same_seed_same_intervals() -> None:
    records, gens = classification_set()
    a = evaluate(records, gens, "classification", seed=4).to_json(include_samples=False)
    b = evaluate(records, gens, "classification", seed=4).to_json(include_samples=False)
    assert a == b


def test_failed_generations_count_as_wrong_and_are_reported() -> None:
    records, gens = classification_set()
    gens[0] = Generation(content=None, error="HTTP 500")
    result = evaluate(records, gens, "classification", bootstrap_samples=100)
    assert result.candidate_errors == 1
    assert result.samples[0].scores["accuracy"] == 0.0
    assert result.scores["accuracy"] == pytest.approx(0.2)
    assert result.usage["latency_p50_s"].n == 4  # the failed one is left out of latency


def test_records_without_a_teacher_label_are_skipped_with_a_reason() -> None:
    records, gens = classification_set()
    records[2] = chat_record("q2", "", record_id="r2")
    result = evaluate(records, gens, "classification", bootstrap_samples=100)
    assert result.n_scored == 4
    assert result.metrics["accuracy"].n == 4
    assert result.to_json()["skipped"] == [
        {"index": 2, "record_id": "r2", "reason": "the teacher's answer has no label"}
    ]


def test_usage_aggregates_compare_candidate_and_teacher_tokens() -> None:
    records, gens = classification_set()
    usage = evaluate(records, gens, "classification", bootstrap_samples=100).usage
    assert usage["latency_p50_s"].value == pytest.approx(0.3)
    assert usage["latency_p95_s"].value == pytest.approx(0.48)
    assert usage["prompt_tokens_mean"].value == 12.0
    assert usage["completion_tokens_mean"].value == 4.0
    assert usage["teacher_prompt_tokens_mean"].value == 20.0  # from the logged response usage
    assert usage["teacher_completion_tokens_mean"].value == 3.0


def test_mismatched_lengths_and_unknown_workload_are_data_errors() -> None:
    records, gens = classification_set()
    with pytest.raises(DataError, match="one generation per record"):
        evaluate(records, gens[:-1], "classification")
    with pytest.raises(DataError, match="Unknown workload type"):
        evaluate(records, gens, "ranking")


# ------------------------------------------------------------------------------------------------ tool calling


def tool_set() -> tuple[list[dict[str, Any]], list[Generation]]:
    weather = tool_call("get_weather", {"city": "Paris", "days": 3})
    records = [chat_record(f"weather {i}", None, tool_calls=[weather], record_id=f"t{i}") for i in range(4)]
    gens = [
        Generation(
            content=None, tool_calls=[tool_call("get_weather", {"days": 3.0, "city": "Paris"})]
        ),  # exact
        Generation(content=None, tool_calls=[tool_call("get_weather", {"city": "paris, france", "days": 3})]),
        Generation(content="I cannot call tools"),  # no call
        Generation(content=None, tool_calls=[tool_call("get_time", {"city": "Paris"})]),
    ]
    return records, gens


def test_tool_calling_without_judge_reports_correctness_as_not_computed() -> None:
    records, gens = tool_set()
    result = evaluate(records, gens, "auto", bootstrap_samples=100)
    assert result.workload_type == "tool_calling"
    assert result.scores["function_name"] == pytest.approx(0.5)
    assert result.scores["function_name_and_args_accuracy"] == pytest.approx(0.25)
    assert result.scores["function_args_f1"] == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    correctness = result.metrics["tool_calling_correctness"]
    assert correctness.status == "not_computed" and correctness.value is None
    assert correctness.reason and "no LLM judge" in correctness.reason
    assert "tool_calling_correctness" not in result.scores


def test_tool_calling_judge_is_asked_only_where_the_rules_do_not_decide() -> None:
    records, gens = tool_set()
    backend = ScriptedJudgeBackend(lambda r: "RATING: 1\nEXPLANATION: same city, semantically")
    result = evaluate(
        records, gens, "tool_calling", Judge(backend, model_name="judge-model"), bootstrap_samples=100
    )
    # exact match → 1 and no call → 0 are settled without the judge; samples 1 and 3 go to the judge
    assert len(backend.requests) == 2
    assert [s.scores["tool_calling_correctness"] for s in result.samples] == [1.0, 1.0, 0.0, 1.0]
    assert result.scores["tool_calling_correctness"] == pytest.approx(0.75)
    transcript = result.samples[1].judge[0]
    assert transcript.messages is not None and "paris, france" in transcript.messages[1]["content"]
    assert transcript.reply and transcript.reply.startswith("RATING: 1")
    assert result.samples[2].judge[0].decided_without_judge


def test_unparseable_judge_replies_are_no_grades_counted_not_zeros() -> None:
    records, gens = tool_set()
    backend = ScriptedJudgeBackend(lambda r: "I think it is probably fine?")
    result = evaluate(records, gens, "tool_calling", Judge(backend, model_name="j"), bootstrap_samples=100)
    metric = result.metrics["tool_calling_correctness"]
    assert metric.no_grade == 2
    assert metric.n == 2  # the two decided without the judge
    assert metric.value == pytest.approx(0.5)
    assert result.samples[1].scores["tool_calling_correctness"] is None
    assert "no 'RATING" in (result.samples[1].judge[0].explanation or "")
    assert any("no usable grade" in w for w in result.warnings)


# ------------------------------------------------------------------------------------------------ generic


def generic_set() -> tuple[list[dict[str, Any]], list[Generation]]:
    records = [
        chat_record("capital of France?", "Paris is the capital of France.", record_id="g0"),
        chat_record("2+2?", "Four.", record_id="g1"),
        chat_record("colour of the sky?", "Blue.", record_id="g2"),
    ]
    gens = [
        Generation(content="The capital of France is Paris."),
        Generation(content="5"),
        Generation(content=""),
    ]
    return records, gens


def test_generic_similarity_from_the_judge_rating_over_ten() -> None:
    records, gens = generic_set()
    ratings = {"capital of France?": "10", "2+2?": "Rating: 2/10"}

    def reply(request: ChatRequest) -> str:
        text = request.messages[1]["content"]
        return next(v for k, v in ratings.items() if k in text)

    backend = ScriptedJudgeBackend(reply)
    result = evaluate(records, gens, "generic", Judge(backend, model_name="j"), bootstrap_samples=100)
    assert [s.scores["similarity"] for s in result.samples] == [1.0, 0.2, 0.1]  # empty answer: rubric's 1
    assert result.scores["similarity"] == pytest.approx((1.0 + 0.2 + 0.1) / 3)
    assert len(backend.requests) == 2
    assert result.scores["token_f1"] == pytest.approx((1.0 + 0 + 0) / 3)
    assert 0 < result.scores["rouge_l"] < result.scores["token_f1"]


def test_generic_without_judge_keeps_reference_metrics_and_explains_similarity() -> None:
    records, gens = generic_set()
    result = evaluate(
        records, gens, "generic", no_judge_reason="judge disabled for this run", bootstrap_samples=100
    )
    assert result.metrics["similarity"].to_json() == {
        "value": None,
        "n": 0,
        "ci_low": None,
        "ci_high": None,
        "confidence": 0.95,
        "status": "not_computed",
        "reason": "judge disabled for this run",
    }
    assert result.metrics["rouge_l"].n == 3


def test_warns_when_the_judge_is_the_model_under_test() -> None:
    records, gens = generic_set()
    judge = Judge(ScriptedJudgeBackend(lambda r: "8"), model_name="small-model")
    result = evaluate(records, gens, "generic", judge, candidate_model="small-model", bootstrap_samples=100)
    assert any("also the model under test" in w for w in result.warnings)
    other = evaluate(records, gens, "generic", judge, candidate_model="other-model", bootstrap_samples=100)
    assert not any("model under test" in w for w in other.warnings)


def test_judge_backend_errors_become_no_grades() -> None:
    class Failing(ScriptedJudgeBackend):
        def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]:
            return [Generation(content=None, error="HTTP 503 after 6 attempts") for _ in requests]

    records, gens = generic_set()
    result = evaluate(
        records, gens, "generic", Judge(Failing(lambda r: ""), model_name="j"), bootstrap_samples=100
    )
    assert result.metrics["similarity"].no_grade == 2
    assert "judge call failed: HTTP 503" in (result.samples[0].judge[0].explanation or "")


# ------------------------------------------------------------------------------------------------ comparison


def test_paired_comparison_gives_the_difference_with_an_interval() -> None:
    records = [chat_record(f"q{i}", f"[[{'ab'[i % 2]}]]", record_id=f"r{i}") for i in range(40)]
    base = evaluate(
        records, [Generation(content="[[a]]") for _ in records], "classification", bootstrap_samples=200
    )
    tuned_answers = [f"[[{'ab'[i % 2]}]]" if i % 8 else "[[b]]" for i in range(40)]
    tuned = evaluate(
        records, [Generation(content=c) for c in tuned_answers], "classification", bootstrap_samples=200
    )
    diff = compare(base, tuned, bootstrap_samples=200)
    assert diff["accuracy"].difference == pytest.approx(tuned.scores["accuracy"] - base.scores["accuracy"])
    assert diff["f1_score"].difference == pytest.approx(tuned.scores["f1_score"] - base.scores["f1_score"])
    assert diff["f1_score"].n == 40
    assert 0 < diff["accuracy"].ci_low < diff["accuracy"].difference < diff["accuracy"].ci_high
    same = compare(base, base, bootstrap_samples=50)["accuracy"]
    assert (same.difference, same.ci_low, same.ci_high) == (0.0, 0.0, 0.0)


def test_comparison_refuses_different_eval_sets() -> None:
    a_records = [chat_record("q", "[[a]]", record_id="x")]
    b_records = [chat_record("q", "[[a]]", record_id="y")]
    a = evaluate(a_records, [Generation(content="[[a]]")], "classification")
    b = evaluate(b_records, [Generation(content="[[a]]")], "classification")
    with pytest.raises(DataError, match="share no scored eval record"):
        compare(a, b)


# ------------------------------------------------------------------------------------------------ robustness


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
_calls = st.lists(
    st.one_of(
        _json_values,
        st.fixed_dictionaries(
            {
                "function": st.fixed_dictionaries(
                    {"name": st.text(max_size=6), "arguments": _json_values | st.text()}
                )
            }
        ),
    ),
    max_size=3,
)


@settings(max_examples=60, deadline=None)
@given(
    workload=st.sampled_from(["classification", "tool_calling", "generic"]),
    contents=st.lists(st.one_of(st.none(), st.text(max_size=30)), min_size=1, max_size=4),
    calls=_calls,
)
def test_evaluate_never_crashes_on_odd_candidate_answers(
    workload: str, contents: list[str | None], calls: Any
) -> None:
    truth = tool_call("f", {"a": 1})
    records = [
        chat_record(f"q{i}", "[[x]]", tool_calls=[truth], record_id=str(i)) for i in range(len(contents))
    ]
    gens = [Generation(content=c, tool_calls=calls) for c in contents]
    result = evaluate(records, gens, workload, bootstrap_samples=20)
    json.dumps(result.to_json())
    for metric in result.metrics.values():
        if metric.value is not None:
            assert 0.0 <= metric.value <= 1.0


def test_an_empty_eval_set_reports_not_computed() -> None:
    result = evaluate([], [], "classification")
    assert result.metrics["f1_score"].status == "not_computed"
    assert result.scores == {}


def test_candidate_requests_carry_messages_tools_and_record_ids() -> None:
    from flywheel.pipeline.evaluate import candidate_requests

    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    records = [chat_record("hi", "yo", record_id="r1"), chat_record("call", None, tools=tools)]
    requests = candidate_requests(records, max_tokens=32)
    assert requests[0].messages == records[0]["request"]["messages"]
    assert requests[0].tools is None and requests[1].tools == tools
    assert requests[0].request_id == "r1"
    assert requests[1].request_id is not None and requests[1].request_id.startswith("req:")
    assert requests[0].max_tokens == 32
