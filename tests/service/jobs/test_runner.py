"""The job runner on scripted backends: steps, statuses, persistence, cancellation and resumption."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, update

from flywheel.backends import Generation
from flywheel.backends.scripted import last_user_text
from flywheel.service.jobs import JobRunner
from flywheel.store import evaluation_samples, job_steps
from scripted_jobs import Harness, ScriptedBackends, classification_logs, dump, job_config, knows_topics


def test_a_job_runs_every_step_and_stores_results_in_the_reference_shape(harness: Harness) -> None:
    harness.ingest(classification_logs(90))
    harness.backends.rule = knows_topics
    job_id = harness.submit()
    assert harness.run(job_id) == "completed"
    detail = harness.repo.detail(job_id)
    assert detail["status"] == "completed", dump(detail)
    assert detail["error"] is None and detail["finished_at"] is not None
    assert detail["num_records"] == 90
    assert [d["name"].split("-")[1] for d in detail["datasets"]] == ["eval", "icl", "train", "val"]
    assert detail["datasets"][0]["num_records"] == 20
    (nim,) = detail["nims"]
    assert (nim["model_name"], nim["status"]) == ("tiny", "completed")
    assert [e["eval_type"] for e in nim["evaluations"]] == ["base-eval", "icl-eval", "customized-eval"]
    for ev in nim["evaluations"]:
        assert ev["scores"]["f1_score"] == 1.0
        assert ev["progress"] == 100.0 and ev["error"] is None
        assert ev["metrics"]["f1_score"]["n"] == 20
        assert ev["metrics"]["f1_score"]["ci_low"] <= 1.0
    (custom,) = nim["customizations"]
    assert custom["status"] == "completed" and custom["progress"] == 100.0 and custom["steps_completed"] > 0
    assert detail["workload_type"] == "classification"
    assert [s["status"] for s in detail["steps"]] == ["completed"] * len(detail["steps"])
    # the customized evaluation used the adapter the customization produced
    assert harness.backends.adapters[-1] is not None
    assert harness.backends.released == 1
    with harness.engine.connect() as conn:
        samples = conn.scalar(select(func.count()).select_from(evaluation_samples))
    assert samples == 60  # 20 per evaluation, evidence for each


def test_per_sample_evidence_is_kept(harness: Harness) -> None:
    harness.ingest(classification_logs(60))
    job_id = harness.submit()
    harness.run(job_id)
    with harness.engine.connect() as conn:
        row = conn.execute(select(evaluation_samples).limit(1)).one()
    sample = orjson.loads(row.sample)
    assert sample["candidate"]["content"] == "[[[business]]]"
    assert sample["teacher"]["content"].startswith("[[[")
    assert row.score in (0.0, 1.0)


def test_too_few_records_fails_with_the_reference_message(harness: Harness) -> None:
    harness.ingest(classification_logs(10))
    job_id = harness.submit()
    assert harness.run(job_id) == "failed"
    detail = harness.repo.detail(job_id)
    assert "Not enough records found for the given workload" in detail["error"]
    assert all(s["status"] == "failed" for s in detail["steps"][1:-1])
    assert detail["nims"][0]["status"] == "failed"


def test_a_job_where_no_evaluation_succeeds_is_failed_not_completed(harness: Harness) -> None:
    harness.ingest(classification_logs(60))
    harness.backends.fail_inference = True
    job_id = harness.submit()
    assert harness.run(job_id) == "failed"
    detail = harness.repo.detail(job_id)
    assert detail["error"].startswith("No evaluation succeeded")
    assert "model server is down" in detail["error"]
    assert detail["nims"][0]["status"] == "failed"


def test_failed_training_fails_only_the_customized_eval(harness: Harness) -> None:
    harness.ingest(classification_logs(60))
    harness.backends.fail_training = True
    job_id = harness.submit()
    assert harness.run(job_id) == "completed"
    detail = harness.repo.detail(job_id)
    steps = {s["name"]: s for s in detail["steps"]}
    assert steps["customization:tiny"]["status"] == "failed"
    assert "out of memory" in steps["customization:tiny"]["error"]
    assert steps["customized-eval:tiny"]["status"] == "failed"
    assert [e["eval_type"] for e in detail["nims"][0]["evaluations"]] == ["base-eval", "icl-eval"]
    assert detail["nims"][0]["status"] == "failed"
    assert detail["nims"][0]["customizations"][0]["status"] == "failed"


def test_cancel_during_evaluation_keeps_what_finished(harness: Harness) -> None:
    harness.ingest(classification_logs(60))
    calls = {"n": 0}
    job_holder: dict[str, str] = {}

    def cancel_on_second_eval() -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # first batch of the icl-eval (base-eval took 2 batches of 16)
            harness.repo.request_cancel(job_holder["id"])

    harness.backends.on_generate = cancel_on_second_eval
    job_id = harness.submit()
    job_holder["id"] = job_id
    assert harness.run(job_id) == "cancelled"
    detail = harness.repo.detail(job_id)
    assert detail["status"] == "cancelled" and detail["finished_at"] is not None
    steps = {s["name"]: s["status"] for s in detail["steps"]}
    assert steps["datasets"] == "completed" and steps["base-eval:tiny"] == "completed"
    assert steps["icl-eval:tiny"] == "cancelled" and steps["customization:tiny"] == "cancelled"
    evals = {e["eval_type"]: e for e in detail["nims"][0]["evaluations"]}
    assert evals["base-eval"]["scores"]  # what finished is kept
    assert evals["icl-eval"]["status"] == "cancelled"
    assert detail["nims"][0]["status"] == "cancelled"
    # a cancelled job is never flipped to another terminal status
    assert not harness.repo.finish_job(job_id, "completed")


def test_cancel_during_training_stops_between_steps(harness: Harness) -> None:
    harness.ingest(classification_logs(120))
    harness.backends.step_s = 0.05
    job_id = harness.submit(job_config(training_config={"epochs": 20, "batch_size": 2}))
    thread = harness.run_in_thread(job_id)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        custom = harness.repo.detail(job_id)["nims"][0]["customizations"]
        if custom and custom[0]["steps_completed"] > 0:
            break
        time.sleep(0.02)
    harness.repo.request_cancel(job_id)
    thread.join(60)
    detail = harness.repo.detail(job_id)
    assert detail["status"] == "cancelled"
    custom = detail["nims"][0]["customizations"][0]
    assert custom["status"] == "cancelled" and custom["steps_completed"] > 0


def test_an_interrupted_job_resumes_without_redoing_finished_steps(harness: Harness) -> None:
    harness.ingest(classification_logs(60))
    job_id = harness.submit()
    # simulate a worker that died during base-eval: datasets done, base-eval left "running"
    runner = harness.runner()
    assert runner.run_step(harness.repo.steps(job_id)[0])
    with harness.engine.begin() as conn:
        conn.execute(
            update(job_steps)
            .where(job_steps.c.job_id == job_id, job_steps.c.name == "base-eval:tiny")
            .values(status="running", attempts=1, lease_expires_at=time.time() - 1)
        )
    from flywheel.service.workers import resumable_jobs

    assert resumable_jobs(harness.engine) == [job_id]
    assert harness.run(job_id) == "completed"
    detail = harness.repo.detail(job_id)
    attempts = {s["name"]: s["attempts"] for s in detail["steps"]}
    assert attempts["datasets"] == 1  # not rebuilt
    assert attempts["base-eval:tiny"] == 2  # re-run once
    assert len(detail["nims"][0]["evaluations"]) == 3  # the interrupted attempt left no duplicate


def test_per_job_overrides_are_honoured(harness: Harness) -> None:
    harness.ingest(classification_logs(90))
    job_id = harness.submit(data_split_config={"eval_size": 12})
    harness.run(job_id)
    detail = harness.repo.detail(job_id)
    assert detail["datasets"][0]["num_records"] == 12
    config = harness.repo.job_config(job_id)
    assert config["data_split_config"]["eval_size"] == 12
    assert config["data_split_config"]["random_seed"] == 1  # omitted fields come from the file


def test_a_scripted_backend_factory_is_pluggable() -> None:
    backends = ScriptedBackends()
    assert backends.released == 0


def test_a_local_judge_scores_generic_answers_through_the_engine(harness: Harness) -> None:
    from factories import chat_record

    harness.ingest(
        [
            chat_record(
                f"Tell me about item {i}",
                f"Item {i} is fine.",
                workload_id="news",
                client_id="web",
                timestamp=i,
            )
            for i in range(40)
        ]
    )
    # the scripted "judge" answers every rating request with 8 (→ 0.8); candidates answer with the rule below
    harness.backends.rule = lambda r: (
        "Rating: 8" if "reference answer" in str(r.messages).lower() else "Item is fine."
    )
    config = job_config(
        llm_judge_config={"deployment_type": "local", "backend": "local", "model_path": "judge-model"},
        evaluation_config={"workload_type": "generic"},
        nims=[{"model_name": "tiny", "backend": "scripted"}],
    )
    job_id = harness.submit(config)
    assert harness.run(job_id) == "completed"
    ev = harness.repo.detail(job_id)["nims"][0]["evaluations"][0]
    assert ev["scores"].get("similarity") == pytest.approx(0.8), ev["metrics"].get("similarity")
    assert ev["metrics"]["rouge_l"]["n"] == 20


def _tool_calling_logs(n: int) -> list[dict[str, Any]]:
    from factories import chat_record, tool_call

    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    return [
        chat_record(
            f"Weather in city {i}?",
            None,
            workload_id="news",
            client_id="web",
            timestamp=1_760_000_000 + i,
            tools=tools,
            tool_calls=[tool_call("get_weather", {"city": f"City {i}"})],
        )
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("tool_eval_type", "judged"), [(None, True), ("tool-calling-judge", True), ("tool-calling-metric", False)]
)
def test_a_configured_judge_grades_tool_calls_unless_the_config_asks_for_metrics_only(
    harness: Harness, tool_eval_type: str | None, judged: bool
) -> None:
    """The reference's config (a judge, no tool_eval_type) scores tool_calling_correctness, as the reference does."""
    from factories import tool_call

    harness.ingest(_tool_calling_logs(60))

    def rule(request: Any) -> Any:
        if not request.tools:  # the judge is asked without tools
            return "RATING: 1\nThe city matches apart from its case."
        city = last_user_text(request).removeprefix("Weather in city ").removesuffix("?")
        return Generation(content=None, tool_calls=[tool_call("get_weather", {"city": f"city {city}"})])

    harness.backends.rule = rule
    evaluation = {"workload_type": "tool_calling"} | (
        {"tool_eval_type": tool_eval_type} if tool_eval_type else {}
    )
    config = job_config(
        llm_judge_config={"deployment_type": "local", "backend": "local", "model_path": "judge-model"},
        evaluation_config=evaluation,
        nims=[{"model_name": "tiny", "backend": "scripted"}],
    )
    job_id = harness.submit(config)
    assert harness.run(job_id) == "completed"
    ev = harness.repo.detail(job_id)["nims"][0]["evaluations"][0]
    assert ev["scores"]["function_name"] == 1.0
    assert ev["scores"]["function_name_and_args_accuracy"] == 0.0  # "city 3" is not "City 3"
    if judged:
        assert ev["scores"]["tool_calling_correctness"] == 1.0
    else:
        assert "tool_calling_correctness" not in ev["scores"]
        assert "tool-calling-metric" in ev["metrics"]["tool_calling_correctness"]["reason"]


def test_the_heartbeat_survives_a_failed_lease_renewal(harness: Harness) -> None:
    """A store hiccup must not stop the heartbeat: the lease would expire and another worker take the step."""
    import threading

    runner = JobRunner(harness.repo, home=harness.home, backends=harness.backends, lease_s=0.15)
    calls: list[str] = []

    def renew(step_id: str, worker_id: str, lease_s: float) -> None:
        calls.append(step_id)
        if len(calls) == 1:
            raise OSError("server closed the connection unexpectedly")

    harness.repo.renew_lease = renew  # type: ignore[method-assign]
    stop = threading.Event()
    beat = threading.Thread(target=runner._heartbeat, args=("step-1", stop), daemon=True)
    beat.start()
    deadline = time.monotonic() + 10
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    beat.join(5)
    assert len(calls) >= 3
