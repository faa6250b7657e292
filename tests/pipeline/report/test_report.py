"""Reports from job details: the recommendation rule, near-miss advice, costs per evaluation, Markdown."""

from __future__ import annotations

from typing import Any

import pytest

from flywheel.pipeline.evaluate import scorer_for
from flywheel.pipeline.report import Price, ReportSettings, build_report, primary_metric, render_markdown


def _metric(
    value: float | None, low: float | None = None, high: float | None = None, n: int = 100
) -> dict[str, Any]:
    if value is None:
        return {
            "value": None,
            "n": 0,
            "ci_low": None,
            "ci_high": None,
            "status": "not_computed",
            "reason": "no judge",
        }
    return {"value": value, "n": n, "ci_low": low, "ci_high": high, "confidence": 0.95, "status": "computed"}


def _evaluation(
    eval_type: str,
    f1: tuple[float, float, float],
    *,
    prompt: float = 100.0,
    completion: float = 4.0,
    rps: float = 2.0,
) -> dict[str, Any]:
    return {
        "eval_type": eval_type,
        "status": "completed",
        "progress": 100.0,
        "error": None,
        "n": 100,
        "scores": {"f1_score": f1[0]},
        "metrics": {"f1_score": _metric(*f1), "accuracy": _metric(*f1)},
        "usage": {
            "latency_p50_s": _metric(0.2, 0.1, 0.3),
            "latency_p95_s": _metric(0.5, 0.4, 0.6),
            "prompt_tokens_mean": _metric(prompt, prompt, prompt),
            "completion_tokens_mean": _metric(completion, completion, completion),
            "teacher_prompt_tokens_mean": _metric(90.0, 90.0, 90.0),
            "teacher_completion_tokens_mean": _metric(5.0, 5.0, 5.0),
        },
        "throughput": {"generation_seconds": 50.0, "requests_per_s": rps},
    }


def _nim(
    name: str, evaluations: list[dict[str, Any]], val_loss: list[list[float]] | None = None
) -> dict[str, Any]:
    customizations = []
    if val_loss is not None:
        customizations.append(
            {
                "status": "completed",
                "progress": 100.0,
                "steps_completed": 50,
                "epochs_completed": 2,
                "metrics": {"train_loss": [[10, 2.0], [50, 0.5]], "val_loss": val_loss},
            }
        )
    return {
        "model_name": name,
        "status": "completed",
        "evaluations": evaluations,
        "customizations": customizations,
    }


def _detail(nims: list[dict[str, Any]], status: str = "completed") -> dict[str, Any]:
    return {
        "id": "JOB1",
        "workload_id": "news",
        "client_id": "web",
        "status": status,
        "workload_type": "classification",
        "nims": nims,
        "steps": [{"name": "curate", "kind": "curate", "status": "completed", "progress": 100.0}],
        "dataset_stats": {"counts": {"total": 500, "selected": 400}, "splits": {"train": {"count": 270}}},
    }


SETTINGS = ReportSettings(
    teacher_model="meta/llama-3.3-70b-instruct",
    candidate_parameters={"small-1b": 1.0, "mid-8b": 8.0},
)


def test_the_cheapest_candidate_whose_lower_bound_clears_the_threshold_is_recommended() -> None:
    detail = _detail(
        [
            _nim("mid-8b", [_evaluation("base-eval", (0.95, 0.92, 0.97))]),
            _nim(
                "small-1b",
                [
                    _evaluation("base-eval", (0.80, 0.72, 0.87)),
                    _evaluation("icl-eval", (0.93, 0.91, 0.96), prompt=600.0),
                    _evaluation("customized-eval", (0.94, 0.905, 0.97)),
                ],
                val_loss=[[25, 0.8], [50, 0.6]],
            ),
        ]
    )
    report = build_report(detail, SETTINGS)
    rec = report["recommendation"]
    # small-1b customized: 2 × 1 × (100 + 4) = 208 PFLOP; small-1b icl: 2 × 1 × 604 = 1,208; mid-8b: 2 × 8 × 104 = 1,664
    assert (rec["status"], rec["candidate"], rec["eval_type"]) == ("recommended", "small-1b", "customized")
    assert rec["cost_per_1m_requests"] == pytest.approx(208.0)
    # teacher: 2 × 70 × (90 + 5) = 13,300 PFLOP → saving 1 − 208 / 13,300
    assert report["teacher"]["cost"]["value"] == pytest.approx(13_300.0)
    assert rec["saving_pct"] == pytest.approx(100 * (1 - 208 / 13_300))
    assert rec["next_step"] == "flywheel export JOB1 --candidate small-1b --out ./small-1b-adapter"
    assert rec["auto_deploy"] is False
    small = report["candidates"][1]["evaluations"]
    assert [e["qualifies"] for e in small] == [False, True, True]
    assert small[0]["shortfalls"] == ["f1_score lower bound 0.720 < 0.900"]


def test_no_candidate_qualifies_names_the_near_miss_and_what_would_help() -> None:
    detail = _detail(
        [
            _nim("small-1b", [_evaluation("base-eval", (0.5, 0.4, 0.6))]),
            _nim(
                "mid-8b",
                [
                    _evaluation("base-eval", (0.7, 0.6, 0.8)),
                    _evaluation("customized-eval", (0.88, 0.80, 0.95)),
                ],
                val_loss=[[25, 0.9], [50, 0.7]],
            ),
        ]
    )
    rec = build_report(detail, SETTINGS)["recommendation"]
    assert rec["status"] == "no_candidate" and rec["candidate"] is None
    assert rec["near_miss"]["candidate"] == "mid-8b" and rec["near_miss"]["eval_type"] == "customized"
    assert rec["near_miss"]["shortfalls"] == ["f1_score lower bound 0.800 < 0.900"]
    advice = " ".join(rec["advice"])
    assert "raise data_split_config.eval_size" in advice  # the interval [0.80, 0.95] contains 0.9
    assert "validation loss was still falling" in advice
    assert "only 270 training records" in advice
    assert "No candidate qualifies" in rec["message"]


def test_a_bigger_candidate_is_suggested_when_even_the_largest_falls_short() -> None:
    detail = _detail([_nim("mid-8b", [_evaluation("base-eval", (0.6, 0.58, 0.62))])])
    advice = build_report(detail, SETTINGS)["recommendation"]["advice"]
    assert any("bigger candidate" in a for a in advice)
    assert any("customization_enabled" in a for a in advice)
    assert not any("eval_size" in a for a in advice)  # the interval is narrow and entirely below 0.9


def test_per_metric_thresholds_apply_to_this_workloads_metrics_only() -> None:
    detail = _detail([_nim("small-1b", [_evaluation("base-eval", (0.85, 0.82, 0.88))])])
    report = build_report(
        detail, ReportSettings(min_score={"f1_score": 0.8, "similarity": 0.99}, teacher_model="t-70b")
    )
    assert report["thresholds"] == {"f1_score": 0.8}
    assert report["recommendation"]["status"] == "recommended"
    assert any("similarity" in note for note in report["notes"])


def test_a_running_job_is_pending_until_something_qualifies() -> None:
    detail = _detail([_nim("small-1b", [_evaluation("base-eval", (0.5, 0.4, 0.6))])], status="running")
    detail["steps"] = [
        {"name": "curate", "kind": "curate", "status": "completed", "progress": 100.0},
        {"name": "small-1b: icl-eval", "kind": "icl-eval", "status": "running", "progress": 50.0},
    ]
    report = build_report(detail, SETTINGS)
    assert report["recommendation"]["status"] == "pending"
    assert report["progress"] == {
        "steps_total": 2,
        "steps_done": 1,
        "percent": pytest.approx(75.0),
        "running": ["small-1b: icl-eval"],
    }


def test_a_full_price_table_reports_dollars() -> None:
    detail = _detail([_nim("small-1b", [_evaluation("base-eval", (0.95, 0.92, 0.97), rps=4.0)])])
    settings = ReportSettings(
        teacher_model="big",
        prices={"big": Price(input_per_1m=3.0, output_per_1m=15.0), "small-1b": Price(gpu_hour=2.5)},
    )
    report = build_report(detail, settings)
    assert report["cost_model"]["unit"] == "USD"
    # teacher: $3 × 90 + $15 × 5 = $345 per 1M requests; candidate: 1e6 × 2.5 / (3600 × 4) = $173.61
    assert report["teacher"]["cost"]["value"] == pytest.approx(345.0)
    evaluation = report["candidates"][0]["evaluations"][0]
    assert evaluation["cost"]["value"] == pytest.approx(1e6 * 2.5 / 14_400)
    assert evaluation["saving_pct"] == pytest.approx(100 * (1 - (1e6 * 2.5 / 14_400) / 345.0))


def test_unknown_teacher_size_leaves_cost_unestimated_with_the_fix() -> None:
    detail = _detail([_nim("small-1b", [_evaluation("base-eval", (0.95, 0.92, 0.97))])])
    report = build_report(detail, ReportSettings(teacher_model="gpt-4o"))
    assert report["teacher"]["cost"]["value"] is None
    assert "cost.teacher_parameters_b" in report["teacher"]["cost"]["reason"]
    assert report["recommendation"]["status"] == "recommended"  # quality still decides; cost only ranks
    assert report["recommendation"]["saving_pct"] is None


def test_markdown_shows_the_recommendation_scores_teacher_and_formula() -> None:
    detail = _detail(
        [_nim("small-1b", [_evaluation("base-eval", (0.95, 0.92, 0.97))], val_loss=[[25, 0.8], [50, 0.6]])]
    )
    text = render_markdown(build_report(detail, SETTINGS))
    assert "**Recommended.** small-1b (base) can replace the teacher" in text
    assert "| small-1b | base | 100 | 0.950 [0.920, 0.970] |" in text
    assert "| meta/llama-3.3-70b-instruct | 70.0 | 90.0 | 5.0 | 13,300.0 PFLOP |" in text
    assert "PFLOP per 1M requests = 2 × P" in text
    assert "| small-1b | completed | 50 | 0.500 | 0.600 |" in text


@pytest.mark.parametrize(
    ("workload_type", "computed", "primary"),
    [
        (
            "tool_calling",
            ["function_name", "function_name_and_args_accuracy"],
            "function_name_and_args_accuracy",
        ),
        ("generic", ["rouge_l", "token_f1"], "rouge_l"),  # no judge: similarity is not computed
        ("generic", ["similarity", "rouge_l"], "similarity"),
    ],
)
def test_the_primary_metric_follows_the_workload_type(
    workload_type: str, computed: list[str], primary: str
) -> None:
    evaluation = _evaluation("base-eval", (0.95, 0.92, 0.97))
    evaluation["metrics"] = {name: _metric(0.95, 0.92, 0.97) for name in computed}
    evaluation["metrics"]["similarity"] = evaluation["metrics"].get("similarity") or _metric(None)
    detail = _detail([_nim("small-1b", [evaluation])])
    detail["workload_type"] = workload_type
    report = build_report(detail, SETTINGS)
    assert report["primary_metric"] == primary
    assert report["recommendation"]["metric"] == primary
    assert report["recommendation"]["status"] == "recommended"


def test_a_judge_metric_threshold_without_a_judge_cannot_qualify() -> None:
    evaluation = _evaluation("base-eval", (0.95, 0.92, 0.97))
    evaluation["metrics"] = {"rouge_l": _metric(0.95, 0.92, 0.97), "similarity": _metric(None)}
    detail = _detail([_nim("small-1b", [evaluation])])
    detail["workload_type"] = "generic"
    report = build_report(detail, ReportSettings(min_score={"similarity": 0.8}, teacher_model="t-70b"))
    rec = report["recommendation"]
    assert rec["status"] == "no_candidate"
    assert rec["near_miss"]["shortfalls"] == ["similarity was not computed (no judge)"]
    assert any("llm_judge_config" in a for a in rec["advice"])


@pytest.mark.parametrize(
    ("workload_type", "computed"),
    [
        ("classification", ["accuracy", "f1_score"]),
        ("tool_calling", ["function_name"]),
        ("generic", ["rouge_l", "token_f1"]),
        ("generic", ["similarity", "rouge_l"]),
        ("generic", []),
    ],
)
def test_the_report_takes_the_primary_metric_from_the_workload_scorer(
    workload_type: str, computed: list[str]
) -> None:
    assert primary_metric(workload_type, computed) == scorer_for(workload_type).primary_metric(computed)


@pytest.mark.parametrize("workload_type", [None, "", "auto", "ranking"])
def test_a_missing_or_unknown_workload_type_is_reported_on_classification_terms(
    workload_type: str | None,
) -> None:
    assert primary_metric(workload_type, ["similarity", "rouge_l"]) == "f1_score"


def _failed_job() -> dict[str, Any]:
    evaluation = {"eval_type": "base-eval", "status": "failed", "error": "boom", "n": None, "metrics": {}}
    detail = _detail([{**_nim("small-1b", [evaluation]), "status": "failed"}], status="failed")
    detail["error"] = "No evaluation succeeded."
    return detail


@pytest.mark.parametrize(
    "settings",
    [
        ReportSettings(),  # no teacher size known
        ReportSettings(teacher_model="meta/llama-3.3-70b-instruct", prices={"other": Price(1.0, 1.0)}),
    ],
)
def test_a_job_with_no_finished_evaluation_does_not_warn_about_costs(settings: ReportSettings) -> None:
    report = build_report(_failed_job(), settings)
    assert report["notes"] == []
    assert report["teacher"]["cost"]["value"] is None
    text = render_markdown(report)
    assert "Teacher cost not estimated" not in text
    assert "cost.prices does not price" not in text
    assert "No evaluation succeeded." in text


def test_a_finished_evaluation_still_explains_a_missing_teacher_cost() -> None:
    detail = _detail([_nim("small-1b", [_evaluation("base-eval", (0.95, 0.92, 0.97))])])
    text = render_markdown(build_report(detail, ReportSettings(teacher_model="gpt-4o")))
    assert "Teacher cost not estimated" in text and "cost.teacher_parameters_b" in text
