"""`flywheel score`: same numbers as the Python API on the same inputs."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from backends.openai_compat.loopback_openai import LoopbackOpenAI, Reply, chat_completion
from factories import chat_record, tool_call
from flywheel.backends.openai_compat import OpenAICompatBackend
from flywheel.cli.score import score
from flywheel.config import FlywheelConfig, Settings
from flywheel.errors import FlywheelError
from flywheel.pipeline.evaluate import Judge, evaluate, prediction_to_generation


class _RootLikeGroup(click.Group):
    """Why: mirrors the root command's contract (FlywheelError → one-line message, exit status 2) without
    depending on how the lead wires `score` into `flywheel.cli.main`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FlywheelError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)


def _cli(settings: Settings | None = None) -> click.Group:
    @click.group(cls=_RootLikeGroup)
    @click.pass_context
    def root(ctx: click.Context) -> None:
        ctx.obj = settings

    root.add_command(score)
    return root


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def _run(args: list[str], settings: Settings | None = None) -> dict[str, Any]:
    result = CliRunner().invoke(_cli(settings), ["score", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _classification_files(tmp_path: Path) -> tuple[Path, Path, list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(1)
    labels = ["sports", "politics", "tech"]
    refs = [chat_record(f"headline {i}", f"[[{rng.choice(labels)}]]", record_id=f"r{i}") for i in range(30)]
    preds = [
        {
            "content": f"Category: [[{rng.choice(labels)}]]",
            "latency_s": 0.05 + i / 100,
            "usage": {"prompt_tokens": 30, "completion_tokens": 5},
        }
        for i in range(30)
    ]
    return _write(tmp_path / "eval.jsonl", refs), _write(tmp_path / "pred.jsonl", preds), refs, preds


def test_classification_json_matches_the_python_api(tmp_path: Path) -> None:
    ref_path, pred_path, refs, preds = _classification_files(tmp_path)
    out = _run(
        ["--references", str(ref_path), "--predictions", str(pred_path), "--workload-type", "classification"]
    )
    api = evaluate(refs, [prediction_to_generation(p) for p in preds], "classification").to_json(
        include_samples=False
    )
    assert out["metrics"] == api["metrics"]
    assert out["usage"] == api["usage"]
    assert out["scores"] == api["scores"]
    assert out["metrics"]["f1_score"]["n"] == 30
    assert {"ci_low", "ci_high"} <= set(out["metrics"]["f1_score"])
    assert "samples" not in out


def test_predictions_keyed_by_record_id_in_any_order(tmp_path: Path) -> None:
    truth = tool_call("lookup_order", {"order_id": "A-17", "include_items": True})
    refs = [
        chat_record(f"where is my order {i}", None, tool_calls=[truth], record_id=f"o{i}") for i in range(6)
    ]
    predictions = []
    for i in range(6):
        args = {"order_id": "A-17", "include_items": True} if i % 2 == 0 else {"order_id": "A-71"}
        message = {"role": "assistant", "content": None, "tool_calls": [tool_call("lookup_order", args)]}
        predictions.append(
            {
                "record_id": f"o{i}",
                "response": {
                    "choices": [{"message": message}],
                    "usage": {"prompt_tokens": 40, "completion_tokens": 12},
                },
            }
        )
    shuffled = list(reversed(predictions))
    out = _run(
        [
            "--references",
            str(_write(tmp_path / "e.jsonl", refs)),
            "--predictions",
            str(_write(tmp_path / "p.jsonl", shuffled)),
            "--samples",
        ]
    )
    api = evaluate(
        refs, [prediction_to_generation(p) for p in predictions], "auto", no_judge_reason="no judge requested"
    ).to_json()
    assert out["workload_type"] == "tool_calling"
    assert out["metrics"]["tool_calling_correctness"].pop("reason").startswith("no judge requested")
    api["metrics"]["tool_calling_correctness"].pop("reason")
    assert out["metrics"] == api["metrics"]
    assert out["scores"]["function_name_and_args_accuracy"] == 0.5
    assert [s["record_id"] for s in out["samples"]] == [f"o{i}" for i in range(6)]
    assert out["samples"] == api["samples"]


def test_judge_metrics_through_the_cli_match_the_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refs = [
        chat_record("say hi", "Hello there!", record_id="g0"),
        chat_record("say bye", "Goodbye!", record_id="g1"),
    ]
    preds = [{"content": "Hi!"}, {"content": "See you."}]

    def judge_script(body: dict[str, Any], call: int) -> Reply:
        return Reply(
            body=chat_completion("8" if "Hello there!" in body["messages"][1]["content"] else "Rating: 6/10")
        )

    monkeypatch.setenv("NVIDIA_API_KEY", "nv-key")
    with LoopbackOpenAI(judge_script) as server:
        out = _run(
            [
                "--references",
                str(_write(tmp_path / "e.jsonl", refs)),
                "--predictions",
                str(_write(tmp_path / "p.jsonl", preds)),
                "--judge-url",
                server.base_url,
                "--judge-model",
                "judge-m",
            ]
        )
        judge = Judge(OpenAICompatBackend(server.base_url, "judge-m"), model_name="judge-m")
        api = evaluate(refs, [prediction_to_generation(p) for p in preds], "generic", judge).to_json(
            include_samples=False
        )
        judge.close()
    assert out["metrics"]["similarity"] == api["metrics"]["similarity"]
    assert out["scores"]["similarity"] == pytest.approx(0.7)
    assert server.headers[0]["authorization"] == "Bearer nv-key"


def test_settings_supply_bootstrap_and_workload_defaults(tmp_path: Path) -> None:
    ref_path, pred_path, _, _ = _classification_files(tmp_path)
    config = FlywheelConfig.model_validate(
        {"evaluation_config": {"workload_type": "generic", "bootstrap_samples": 200}}
    )
    settings = Settings.from_env(config, None, {})
    out = _run(["--references", str(ref_path), "--predictions", str(pred_path)], settings)
    assert out["workload_type"] == "generic"
    assert out["bootstrap"]["samples"] == 200
    assert out["metrics"]["similarity"]["status"] == "not_computed"


def test_table_output_names_the_metrics(tmp_path: Path) -> None:
    ref_path, pred_path, _, _ = _classification_files(tmp_path)
    result = CliRunner().invoke(
        _cli(), ["score", "--references", str(ref_path), "--predictions", str(pred_path)]
    )
    assert result.exit_code == 0, result.output
    assert "f1_score" in result.output and "latency_p95_s" in result.output


def test_bad_input_is_reported_without_a_traceback(tmp_path: Path) -> None:
    ref_path, _, _, _ = _classification_files(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"content": "[[a]]"}\nnot json\n', encoding="utf-8")
    result = CliRunner().invoke(_cli(), ["score", "--references", str(ref_path), "--predictions", str(bad)])
    assert result.exit_code == 2
    assert "bad.jsonl:2: not valid JSON" in result.output
    assert "Traceback" not in result.output
    short = _write(tmp_path / "short.jsonl", [{"content": "[[a]]"}])
    result = CliRunner().invoke(_cli(), ["score", "--references", str(ref_path), "--predictions", str(short)])
    assert result.exit_code == 2 and "30 eval records but 1 predictions" in result.output


def test_incomplete_judge_options_are_a_clean_error(tmp_path: Path) -> None:
    ref_path, pred_path, _, _ = _classification_files(tmp_path)
    args = [
        "score",
        "--references",
        str(ref_path),
        "--predictions",
        str(pred_path),
        "--judge-url",
        "http://x",
    ]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 2 and "Invalid judge options" in result.output
