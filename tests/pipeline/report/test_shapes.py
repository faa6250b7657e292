"""The declared shapes of the job detail and the report match what the code produces, key for key."""

from __future__ import annotations

from typing import Any

from flywheel.pipeline.evaluate import MetricResult
from flywheel.pipeline.report import (
    CostJSON,
    CostModel,
    JobDetail,
    Metric,
    NearMiss,
    Recommendation,
    Report,
    ReportCandidate,
    ReportCustomization,
    ReportEvaluation,
    ReportProgress,
    ReportSettings,
    TeacherSummary,
    build_report,
    render_markdown,
)


def _keys(shape: Any) -> frozenset[str]:
    return frozenset(shape.__required_keys__ | shape.__optional_keys__)


def _metric(value: float) -> Metric:
    return {
        "value": value,
        "n": 50,
        "ci_low": value - 0.02,
        "ci_high": value + 0.01,
        "confidence": 0.95,
        "status": "computed",
    }


def _detail(f1: float) -> JobDetail:
    usage = {
        name: _metric(v)
        for name, v in [
            ("latency_p50_s", 0.2),
            ("latency_p95_s", 0.4),
            ("prompt_tokens_mean", 80.0),
            ("completion_tokens_mean", 4.0),
            ("teacher_prompt_tokens_mean", 90.0),
            ("teacher_completion_tokens_mean", 5.0),
        ]
    }
    return {
        "id": "JOB1",
        "workload_id": "news",
        "client_id": "web",
        "status": "completed",
        "started_at": "2026-01-01T00:00:00",
        "finished_at": "2026-01-01T00:10:00",
        "num_records": 400,
        "error": None,
        "llm_judge": None,
        "datasets": [
            {"name": "flywheel-eval-news-1", "num_records": 50, "nmp_uri": None, "path": "/d/eval.jsonl"}
        ],
        "nims": [
            {
                "model_name": "small-1b",
                "status": "completed",
                "deployment_status": None,
                "runtime_seconds": 60.0,
                "error": None,
                "evaluations": [
                    {
                        "eval_type": "customized-eval",
                        "scores": {"f1_score": f1},
                        "started_at": None,
                        "finished_at": None,
                        "runtime_seconds": 30.0,
                        "progress": 100.0,
                        "nmp_uri": None,
                        "mlflow_uri": None,
                        "error": None,
                        "status": "completed",
                        "metrics": {"f1_score": _metric(f1), "accuracy": _metric(f1)},
                        "usage": usage,
                        "throughput": {"generation_seconds": 25.0, "requests_per_s": 2.0},
                        "n": 50,
                    }
                ],
                "customizations": [
                    {
                        "started_at": None,
                        "finished_at": None,
                        "runtime_seconds": 20.0,
                        "progress": 100.0,
                        "epochs_completed": 2,
                        "steps_completed": 40,
                        "nmp_uri": None,
                        "customized_model": "small-1b@JOB1",
                        "error": None,
                        "status": "completed",
                        "metrics": {"train_loss": [[10, 1.0], [40, 0.4]], "val_loss": [[20, 0.8], [40, 0.5]]},
                    }
                ],
            }
        ],
        "workload_type": "classification",
        "dataset_stats": None,
        "steps": [
            {
                "name": "datasets",
                "kind": "datasets",
                "status": "completed",
                "progress": 100.0,
                "attempts": 1,
                "started_at": None,
                "finished_at": None,
                "error": None,
            }
        ],
    }


SETTINGS = ReportSettings(teacher_model="meta/llama-3.3-70b-instruct", candidate_parameters={"small-1b": 1.0})


def test_a_report_has_exactly_the_keys_its_shapes_declare() -> None:
    report = build_report(_detail(0.97), SETTINGS)
    assert set(report) == _keys(Report)
    assert set(report["cost_model"]) == _keys(CostModel)
    assert set(report["teacher"]) == _keys(TeacherSummary)
    assert set(report["teacher"]["cost"]) == _keys(CostJSON)
    assert set(report["progress"]) == _keys(ReportProgress)
    (candidate,) = report["candidates"]
    assert set(candidate) == _keys(ReportCandidate)
    assert set(candidate["customization"]) == _keys(ReportCustomization)
    (evaluation,) = candidate["evaluations"]
    assert set(evaluation) == _keys(ReportEvaluation)
    assert report["recommendation"]["status"] == "recommended"
    assert set(report["recommendation"]) == _keys(Recommendation)


def test_a_near_miss_has_the_keys_its_shape_declares() -> None:
    recommendation = build_report(_detail(0.5), SETTINGS)["recommendation"]
    assert recommendation["status"] == "no_candidate"
    assert set(recommendation) == _keys(Recommendation)
    assert set(recommendation["near_miss"]) == _keys(NearMiss)


def test_the_metric_shape_is_what_the_evaluator_writes() -> None:
    computed = MetricResult("f1_score", 0.9, 40, 0.8, 0.95).to_json()
    assert set(computed) == Metric.__required_keys__
    not_computed = MetricResult.not_computed("similarity", "no judge").to_json()
    assert set(not_computed) <= _keys(Metric) and "reason" in not_computed


def test_the_markdown_renders_a_typed_report() -> None:
    text = render_markdown(build_report(_detail(0.97), SETTINGS))
    assert "**Recommended.** small-1b (customized)" in text
    assert "| small-1b | customized | 50 |" in text
