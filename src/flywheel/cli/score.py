"""``flywheel score``: score arbitrary candidate outputs against teacher logs, without a job or a store.

``EVAL.jsonl`` holds log records (``request``/``response``); ``PRED.jsonl`` holds one candidate answer per line,
either ``{"response": <ChatCompletion>}`` or ``{"content": …, "tool_calls": […]}``, in the same order as the eval
records or keyed by ``record_id``/``id`` (matching the eval record's ``record_id``/``id``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flywheel.errors import ConfigError, DataError

if TYPE_CHECKING:
    from flywheel.backends._types import Generation
    from flywheel.pipeline.evaluate import EvaluationResult, Judge

_WORKLOAD_CHOICES = ["auto", "classification", "tool_calling", "generic"]


def _prediction_key(prediction: Mapping[str, Any]) -> str | None:
    for key in ("record_id", "id"):
        value = prediction.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
    return None


def align_predictions(
    references: list[dict[str, Any]], predictions: list[dict[str, Any]]
) -> list[Generation]:
    """One :class:`Generation` per reference: matched by record id when every prediction has one that matches a
    reference, else by position (then the counts must agree). A reference without a prediction gets an error."""
    from flywheel.backends._types import Generation
    from flywheel.pipeline.evaluate import prediction_to_generation
    from flywheel.pipeline.evaluate._answers import record_id

    keys = [_prediction_key(p) for p in predictions]
    ref_ids = [record_id(r, i) for i, r in enumerate(references)]
    if predictions and all(k is not None for k in keys) and set(keys) <= set(ref_ids):
        by_key = {k: p for k, p in zip(keys, predictions, strict=True)}
        return [
            prediction_to_generation(by_key[rid])
            if rid in by_key
            else Generation(content=None, error=f"no prediction for record {rid}")
            for rid in ref_ids
        ]
    if len(predictions) != len(references):
        raise DataError(
            f"{len(references)} eval records but {len(predictions)} predictions, and the predictions are not keyed "
            "by record id. Give one prediction per line in the same order, or add a 'record_id' to each."
        )
    return [prediction_to_generation(p) for p in predictions]


def _judge_from_options(settings: Any, judge_url: str | None, judge_model: str | None) -> Judge:
    from flywheel.config import LLMJudgeConfig
    from flywheel.pipeline.evaluate import build_judge, resolve_judge_api_key

    config = getattr(getattr(settings, "config", None), "llm_judge_config", None)
    if judge_url or judge_model:
        base = config.model_dump() if config is not None else {"deployment_type": "remote"}
        base.update({"deployment_type": "remote", "backend": "openai"})
        if judge_url:
            base["url"] = judge_url
        if judge_model:
            base["model_name"] = judge_model
        try:
            config = LLMJudgeConfig.model_validate(base)
        except ValueError as exc:  # pydantic's ValidationError
            raise ConfigError(
                f"Invalid judge options: {exc}. Pass both --judge-url and --judge-model."
            ) from exc
    if config is None:
        raise DataError(
            "--judge needs a judge: set llm_judge_config in the configuration file or pass --judge-url and "
            "--judge-model."
        )
    env = getattr(settings, "env", None) or os.environ
    return build_judge(config, resolve_judge_api_key(config, env))


def _format_metric(metric: dict[str, Any]) -> tuple[str, str, str]:
    if metric["status"] != "computed":
        return "not computed", "-", metric.get("reason", "")
    ci = f"[{metric['ci_low']:.3f}, {metric['ci_high']:.3f}]"
    note = f"no grade: {metric['no_grade']}" if metric.get("no_grade") else ""
    return f"{metric['value']:.4f}", f"{metric['n']} {ci}", note


def _print_table(result: EvaluationResult) -> None:
    from rich.console import Console
    from rich.table import Table

    data = result.to_json(include_samples=False)
    table = Table(title=f"{data['workload_type']} · {data['n_scored']} scored of {data['n_records']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column(f"n [{int(result.confidence * 100)}% CI]")
    table.add_column("note")
    for section in ("metrics", "usage"):
        for name, metric in data[section].items():
            table.add_row(name, *_format_metric(metric))
    console = Console()
    console.print(table)
    if data["candidate_errors"]:
        console.print(
            f"{data['candidate_errors']} candidate answer(s) failed or were missing; scored as wrong."
        )
    for warning in data["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {warning}")


@click.command("score")
@click.option(
    "--references",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Eval JSONL: logged records with the teacher's answers.",
)
@click.option(
    "--predictions",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Candidate JSONL: {'response': ChatCompletion} or {'content', 'tool_calls'} per line.",
)
@click.option(
    "--workload-type",
    type=click.Choice(_WORKLOAD_CHOICES),
    default=None,
    help="Workload type (default: evaluation_config.workload_type, else auto).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the result as JSON (metrics with n, ci_low, ci_high)."
)
@click.option("--samples", is_flag=True, help="With --json, include the per-sample evidence.")
@click.option("--judge/--no-judge", default=False, help="Compute judge metrics with llm_judge_config.")
@click.option("--judge-url", default=None, help="OpenAI-compatible judge URL (implies --judge).")
@click.option("--judge-model", default=None, help="Judge model name (implies --judge).")
@click.option(
    "--candidate-model", default=None, help="Name of the model under test (warns if it is the judge)."
)
@click.option("--bootstrap-samples", type=click.IntRange(min=0), default=None, help="Bootstrap resamples.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.pass_context
def score(
    ctx: click.Context,
    references: Path,
    predictions: Path,
    workload_type: str | None,
    as_json: bool,
    samples: bool,
    judge: bool,
    judge_url: str | None,
    judge_model: str | None,
    candidate_model: str | None,
    bootstrap_samples: int | None,
    seed: int,
) -> None:
    """Score candidate answers (PRED.jsonl) against the teacher's logged answers (EVAL.jsonl)."""
    from flywheel.jsonl import read_jsonl
    from flywheel.pipeline.evaluate import evaluate

    settings = ctx.obj
    evaluation_config = getattr(getattr(settings, "config", None), "evaluation_config", None)
    if workload_type is None:
        workload_type = evaluation_config.workload_type if evaluation_config is not None else "auto"
    if bootstrap_samples is None:
        bootstrap_samples = evaluation_config.bootstrap_samples if evaluation_config is not None else 1000
    confidence = evaluation_config.confidence if evaluation_config is not None else 0.95
    the_judge: Judge | None = None
    try:  # FlywheelError propagates: the root group prints it without a traceback (exit status 2)
        refs = read_jsonl(references)
        generations = align_predictions(refs, read_jsonl(predictions))
        if judge or judge_url or judge_model:
            the_judge = _judge_from_options(settings, judge_url, judge_model)
        result = evaluate(
            refs,
            generations,
            workload_type,
            the_judge,
            candidate_model=candidate_model,
            no_judge_reason="no judge requested (pass --judge, or --judge-url and --judge-model)",
            bootstrap_samples=bootstrap_samples,
            confidence=confidence,
            seed=seed,
        )
    finally:
        if the_judge is not None:
            the_judge.close()
    if as_json:
        click.echo(json.dumps(result.to_json(include_samples=samples), ensure_ascii=False, indent=2))
    else:
        _print_table(result)
