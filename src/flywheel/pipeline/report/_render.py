"""The report as Markdown (``flywheel report --markdown``; the terminal view renders the same text with rich)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from flywheel.pipeline.report._cost import CostJSON
from flywheel.pipeline.report._shapes import Metric, Report, ReportCustomization


def _num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def format_metric(metric: Metric | Mapping[str, Any] | None, digits: int = 3) -> str:
    """``0.850 [0.775, 0.916]``, ``not computed``, or ``—`` when there is no metric."""
    if not metric:
        return "—"
    if metric.get("status") != "computed" or metric.get("value") is None:
        return "not computed"
    low, high = metric.get("ci_low"), metric.get("ci_high")
    text = f"{metric['value']:.{digits}f}"
    if low is not None and high is not None:
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return text


def _value(metric: Metric | None, digits: int) -> str:
    """Just the point estimate of a usage figure (its interval is in the JSON report)."""
    if not metric or metric.get("status") != "computed" or metric.get("value") is None:
        return "—"
    return f"{metric['value']:.{digits}f}"


def format_cost(cost: CostJSON | None) -> str:
    """``$1,234.56`` / ``12.3 PFLOP`` / ``—``."""
    amount = cost.get("value") if cost else None
    if cost is None or amount is None:
        return "—"
    value = float(amount)
    if cost.get("unit") == "USD":
        return f"${value:,.2f}"
    return f"{value:,.1f} PFLOP"


def _saving(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a Markdown table (``|`` inside cells escaped)."""
    return [_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows)]


def render_markdown(report: Report | Mapping[str, Any]) -> str:
    """A self-contained Markdown document of ``report`` (from :func:`build_report`, or its JSON from the API)."""
    report = cast(Report, report)  # a plain dict of the JSON reads as the Report it was serialised from
    metric = report["primary_metric"]
    rec = report["recommendation"]
    lines = [
        f"# flywheel report — job {report['job_id']}",
        "",
        f"Workload `{report.get('workload_id')}` · client `{report.get('client_id')}` · status "
        f"**{report.get('status')}** · workload type {report.get('workload_type') or '—'}",
        "",
        "## Recommendation",
        "",
    ]
    if report.get("error"):
        lines[4:4] = [f"> Job error: {report['error']}", ""]
    # the message of the other statuses starts with what they are ("No candidate qualifies: …")
    prefix = "**Recommended.** " if rec["status"] == "recommended" else ""
    lines.append(prefix + rec.get("message", ""))
    thresholds = ", ".join(f"{k} ≥ {v:.2f}" for k, v in (rec.get("thresholds") or {}).items())
    lines += [
        "",
        f"Rule: the cheapest candidate whose 95% lower bound clears {thresholds}. flywheel never deploys.",
    ]
    for tip in rec.get("advice") or []:
        lines.append(f"- {tip}")
    if rec.get("next_step"):
        lines += ["", f"To promote it, export the adapter: `{rec['next_step']}`"]

    metric_names: list[str] = []
    for cand in report["candidates"]:
        for ev in cand["evaluations"]:
            for name in ev["metrics"]:
                if name not in metric_names:
                    metric_names.append(name)
    metric_names.sort(key=lambda n: (n != metric, n))
    unit = report["cost_model"]["unit"]
    header = ["Candidate", "Eval", "n", *metric_names, "p50 s", "p95 s", "prompt tok", "completion tok"]
    header += [f"cost / 1M req ({unit})", "saving"]
    rows = []
    for cand in report["candidates"]:
        for ev in cand["evaluations"]:
            usage = ev["usage"]
            rows.append(
                [
                    cand["model_name"],
                    ev["eval_type"] + ("" if ev["status"] == "completed" else f" ({ev['status']})"),
                    str(ev.get("n") if ev.get("n") is not None else "—"),
                    *(format_metric(ev["metrics"].get(name)) for name in metric_names),
                    _value(usage.get("latency_p50_s"), 2),
                    _value(usage.get("latency_p95_s"), 2),
                    _value(usage.get("prompt_tokens_mean"), 1),
                    _value(usage.get("completion_tokens_mean"), 1),
                    format_cost(ev["cost"]),
                    _saving(ev["saving_pct"]),
                ]
            )
    lines += ["", f"## Scores (95% confidence intervals; primary metric {metric})", ""]
    lines += markdown_table(header, rows) if rows else ["No evaluation has run yet."]

    teacher = report["teacher"]
    lines += ["", "## Teacher", ""]
    lines += markdown_table(
        ["Model", "Parameters (B)", "prompt tok (mean)", "completion tok (mean)", f"cost / 1M req ({unit})"],
        [
            [
                str(teacher.get("model") or "—"),
                _num(teacher.get("parameters_b"), 1),
                _num(teacher.get("prompt_tokens_mean"), 1),
                _num(teacher.get("completion_tokens_mean"), 1),
                format_cost(teacher["cost"]),
            ]
        ],
    )
    if teacher["cost"].get("reason"):
        lines += ["", f"Teacher cost not estimated: {teacher['cost']['reason']}."]

    basis = report["cost_model"]["basis"]
    formulas = report["cost_model"]["formulas"]
    lines += ["", "## Cost model", ""]
    if basis == "prices":
        lines.append(
            f"Price table (config `cost.prices`): {formulas['token_prices']}; {formulas['gpu_hour']}."
        )
    else:
        lines.append(f"Parameters × tokens (default): {formulas['parameters']}.")
    lines += [f"- {note}" for note in report.get("notes") or []]

    trainings: list[tuple[str, ReportCustomization]] = [
        (c["model_name"], custom) for c in report["candidates"] if (custom := c.get("customization"))
    ]
    if trainings:
        lines += ["", "## Training", ""]
        lines += markdown_table(
            ["Candidate", "Status", "Steps", "Final train loss", "Best val loss"],
            [
                [
                    name,
                    str(t.get("status")),
                    str(t.get("steps_completed")),
                    _num(t["train_loss"][-1][1] if t.get("train_loss") else None),
                    _num(t.get("best_val_loss")),
                ]
                for name, t in trainings
            ],
        )

    stats = report.get("dataset_stats")
    if stats:
        counts = stats.get("counts") or {}
        splits = stats.get("splits") or {}
        lines += ["", "## Data", ""]
        lines.append(
            " → ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items() if isinstance(v, int)) or "—"
        )
        if splits:
            lines.append("")
            lines.append(", ".join(f"{name} {s.get('count')}" for name, s in splits.items()))
        rejected = stats.get("rejected") or {}
        if rejected:
            lines += ["", "Rejected: " + "; ".join(f"{reason} ({n})" for reason, n in rejected.items())]
    return "\n".join(lines) + "\n"
