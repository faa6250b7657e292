"""Which candidate can replace the teacher: the cheapest whose lower confidence bound clears the threshold.

flywheel never deploys anything; the recommendation says what the evidence supports and, when nothing qualifies, which
candidate came closest and what would most likely close the gap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_MIN_SCORE = 0.9


def primary_metric(workload_type: str | None, computed: Sequence[str] = ()) -> str:
    """The headline metric of ``workload_type`` given the metrics that were ``computed``, as the workload's scorer
    declares it (see :func:`flywheel.pipeline.evaluate.scorer_for`); a missing or unknown workload type is read as
    classification."""
    # Imported here: the evaluator pulls numpy and the config models, which `import flywheel.pipeline.report`
    # (the CLI's job listing, the model card) does not otherwise need.
    from flywheel.pipeline.evaluate import SCORERS

    scorer = SCORERS.get(workload_type or "") or SCORERS["classification"]
    return scorer.primary_metric(computed)


def thresholds_for(
    min_score: float | Mapping[str, float], workload_metrics: Sequence[str], primary: str
) -> tuple[dict[str, float], list[str]]:
    """The ``{metric: minimum lower CI bound}`` a candidate must clear, and notes about ignored entries.

    A single number applies to the primary metric. A mapping applies each entry that is a metric of this workload;
    if none is, the primary metric gets the default threshold.
    """
    if not isinstance(min_score, Mapping):
        return {primary: float(min_score)}, []
    applicable = {k: float(v) for k, v in min_score.items() if k in workload_metrics}
    notes = []
    ignored = sorted(set(min_score) - set(applicable))
    if ignored:
        notes.append(f"promotion.min_score entries {ignored} do not apply to this workload's metrics.")
    if not applicable:
        notes.append(f"No promotion.min_score entry for {primary}; using {DEFAULT_MIN_SCORE}.")
        applicable = {primary: DEFAULT_MIN_SCORE}
    return applicable, notes


def shortfalls(metrics: Mapping[str, Mapping[str, Any]], thresholds: Mapping[str, float]) -> list[str]:
    """Why an evaluation does not qualify (empty when it does): one sentence per threshold it misses."""
    out = []
    for name, minimum in thresholds.items():
        metric = metrics.get(name) or {}
        if metric.get("status") != "computed" or metric.get("value") is None:
            reason = metric.get("reason") or "not computed"
            out.append(f"{name} was not computed ({reason})")
            continue
        low = metric.get("ci_low")
        low = metric["value"] if low is None else low
        if low < minimum:
            out.append(f"{name} lower bound {low:.3f} < {minimum:.3f}")
    return out


def _sort_key(entry: Mapping[str, Any]) -> tuple[float, float, float]:
    cost = entry.get("cost_value")
    params = entry.get("parameters_b")
    return (
        cost if cost is not None else float("inf"),
        params if params is not None else float("inf"),
        -(entry.get("ci_low") or 0.0),
    )


def recommend(
    options: Sequence[Mapping[str, Any]],
    *,
    job_id: str,
    job_status: str,
    metric: str,
    thresholds: Mapping[str, float],
    dataset_counts: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Pick the cheapest qualifying option, or explain why none qualifies.

    Each option describes one finished evaluation: ``candidate``, ``eval_type``, ``score``, ``ci_low``, ``ci_high``,
    ``n``, ``qualifies``, ``shortfalls``, ``cost_value``, ``saving_pct``, ``parameters_b`` and, for advice,
    ``customization_enabled`` / ``val_loss_falling`` / ``max_parameters_b``.
    """
    threshold = thresholds.get(metric)
    base: dict[str, Any] = {
        "metric": metric,
        "thresholds": dict(thresholds),
        "threshold": threshold,
        "candidate": None,
        "eval_type": None,
        "score": None,
        "ci_low": None,
        "ci_high": None,
        "n": None,
        "cost_per_1m_requests": None,
        "saving_pct": None,
        "near_miss": None,
        "advice": [],
        "next_step": None,
        "auto_deploy": False,
    }
    qualifying = sorted((o for o in options if o["qualifies"]), key=_sort_key)
    if qualifying:
        best = qualifying[0]
        base.update(_pick(best), status="recommended")
        saving = best.get("saving_pct")
        base["message"] = (
            f"{best['candidate']} ({best['eval_type']}) can replace the teacher: {metric} {best['score']:.3f} "
            f"[{best['ci_low']:.3f}, {best['ci_high']:.3f}], n={best['n']}, clears {threshold:.2f}"
            + (f"; estimated saving {saving:.1f}%." if saving is not None else ".")
            + " flywheel does not deploy it; review the samples and promote it yourself."
        )
        base["next_step"] = (
            f"flywheel export {job_id} --candidate {best['candidate']} --out ./{_slug(best['candidate'])}-adapter"
            if best["eval_type"] == "customized"
            else None
        )
        return base
    if job_status in ("pending", "running") and not options:
        base.update(status="pending", message="No evaluation has finished yet.")
        return base
    if not options:
        base.update(
            status="no_candidate", message="No evaluation finished, so no candidate can be recommended."
        )
        return base
    near = max(options, key=lambda o: (o.get("ci_low") or 0.0, o.get("score") or 0.0))
    base.update(status="pending" if job_status in ("pending", "running") else "no_candidate")
    base["near_miss"] = {**_pick(near), "shortfalls": list(near["shortfalls"])}
    base["advice"] = advice(near, options, threshold=threshold, dataset_counts=dataset_counts)
    prefix = "No candidate qualifies yet" if base["status"] == "pending" else "No candidate qualifies"
    score = near.get("score")
    base["message"] = (
        f"{prefix}: the closest is {near['candidate']} ({near['eval_type']}) with {metric} "
        + (
            f"{score:.3f} [{near['ci_low']:.3f}, {near['ci_high']:.3f}]"
            if score is not None
            else "not computed"
        )
        + (f", below the {threshold:.2f} threshold." if threshold is not None else ".")
    )
    return base


def _pick(option: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "candidate": option["candidate"],
        "eval_type": option["eval_type"],
        "score": option.get("score"),
        "ci_low": option.get("ci_low"),
        "ci_high": option.get("ci_high"),
        "n": option.get("n"),
        "cost_per_1m_requests": option.get("cost_value"),
        "saving_pct": option.get("saving_pct"),
    }


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in name.split("/")[-1])


def advice(
    near: Mapping[str, Any],
    options: Sequence[Mapping[str, Any]],
    *,
    threshold: float | None,
    dataset_counts: Mapping[str, int] | None,
) -> list[str]:
    """What would most likely help the near-miss qualify, most useful first (heuristics, stated as such)."""
    out: list[str] = []
    low, high, score = near.get("ci_low"), near.get("ci_high"), near.get("score")
    if low is not None and high is not None and threshold is not None and low < threshold <= high:
        # the threshold lies inside the interval: the evidence cannot tell yet, and more eval data would settle it
        # (when the whole interval is below the threshold, more data alone cannot lift the score)
        out.append(
            f"More evaluation data: the interval [{low:.3f}, {high:.3f}] at n={near.get('n')} contains the "
            "threshold; raise data_split_config.eval_size (and log more traffic) to narrow it."
        )
    if near["eval_type"] != "customized" and not near.get("customization_enabled"):
        out.append(
            f"Fine-tune {near['candidate']}: set customization_enabled: true for it (LoRA usually beats few-shot)."
        )
    if near["eval_type"] == "customized":
        if near.get("val_loss_falling"):
            out.append(
                "More training: validation loss was still falling when training stopped; raise "
                "training_config.epochs or max_steps."
            )
        train = (dataset_counts or {}).get("train")
        if train is not None and train < 1000:
            out.append(
                f"More training data: only {train} training records; log more traffic for this workload."
            )
    if (
        score is not None
        and threshold is not None
        and score < threshold
        and near.get("parameters_b") is not None
        and near.get("parameters_b") == near.get("max_parameters_b")
    ):
        out.append("A bigger candidate: even the largest candidate's point estimate is below the threshold.")
    if near.get("shortfalls") and any("not computed" in s for s in near["shortfalls"]):
        out.append("Configure llm_judge_config so judge-based metrics can be computed.")
    if not out:
        out.append("More data and more training epochs are the usual next steps; then re-run.")
    return out
