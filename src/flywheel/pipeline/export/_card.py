"""The model card (README.md) of an export, rendered from the facts written to ``flywheel_export.json``."""

from __future__ import annotations

import json
from typing import Any

from flywheel.pipeline.report import markdown_table

_EVAL_TITLES = {
    "base-eval": "base model",
    "icl-eval": "base model with in-context examples",
    "customized-eval": "fine-tuned (this export)",
}


def render_card(facts: dict[str, Any]) -> str:
    """Markdown: what the model is, what data and settings made it, how well it did, and how to load it."""
    job, base, data = facts["job"], facts["base_model"], facts["data"]
    what = (
        "base model with the LoRA adapter merged in" if facts["kind"] == "merged" else "LoRA adapter (PEFT)"
    )
    lines = [
        f"# {facts['candidate']} fine-tuned for `{job['workload_id']}`",
        "",
        f"A {what} exported by flywheel {facts['flywheel_version']} on {facts['exported_at']} from flywheel run "
        f"`{job['id']}` (workload_id `{job['workload_id']}`, client_id `{job['client_id']}`). The teacher's logged "
        "answers were the ground truth for training and scoring.",
        "",
        "## Base model",
        "",
        *markdown_table(["", ""], _base_rows(base)),
        "",
        "## Data",
        "",
        *markdown_table(
            ["records used", "eval", "ICL eval", "train", "validation", "workload type"],
            [
                [
                    _count(data["records_used"]),
                    _count(data["eval"]),
                    _count(data["icl_eval"]),
                    _count(data["train"]),
                    _count(data["val"]),
                    str(job.get("workload_type") or "–"),
                ]
            ],
        ),
        "",
        "## Hyper-parameters",
        "",
        *_settings("training_config", facts["hyperparameters"]["training_config"]),
        *_settings("lora_config", facts["hyperparameters"]["lora_config"]),
        *_settings("customizer_configs", facts["hyperparameters"].get("customizer_configs") or {}),
        "## Scores",
        "",
        "Scores against the teacher's answers on the held-out eval split, with their confidence intervals "
        "(bootstrap) and the number of samples each rests on.",
        "",
        *_scores(facts["evaluations"]),
        "## How it was produced",
        "",
        *_production(facts),
        "",
        "## How to load it",
        "",
        "```python",
        *load_snippet(facts),
        "```",
        "",
    ]
    return "\n".join(lines)


def _count(value: Any) -> str:
    return "–" if value is None else str(value)


def _base_rows(base: dict[str, Any]) -> list[list[str]]:
    rows = [
        ["name", f"`{base['model_name']}`"],
        ["backend", f"`{base['backend']}`"],
        ["model_path", f"`{base['model_path']}`"],
    ]
    source = base.get("source")
    if source:
        where = source["path"] + (f"/{source['gguf_file']}" if source.get("gguf_file") else "")
        rows.append(["weights", f"{source['kind']}: `{where}`"])
    elif base.get("error"):
        rows.append(["weights", f"not found on this machine: {base['error']}"])
    else:
        rows.append(["weights", f"served by the `{base['backend']}` backend, not on this machine"])
    return rows


def _settings(title: str, values: dict[str, Any]) -> list[str]:
    if not values:
        return []
    rows = [[f"`{key}`", f"`{json.dumps(value)}`"] for key, value in values.items()]
    return [f"`{title}`:", "", *markdown_table(["key", "value"], rows), ""]


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "–"


def _scores(evaluations: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for eval_type, ev in evaluations.items():
        lines += [f"### {eval_type} — {_EVAL_TITLES.get(eval_type, eval_type)}", ""]
        if ev.get("error") or ev.get("status") != "completed":
            lines += [f"Not scored ({ev.get('status')}): {ev.get('error') or 'no result'}", ""]
            continue
        rows = []
        for name, metric in (ev.get("metrics") or {}).items():
            if metric.get("status") != "computed" or metric.get("value") is None:
                rows.append([name, "not computed", "–", "0", metric.get("reason") or ""])
                continue
            level = f"{100 * float(metric.get('confidence') or 0.95):.0f}%"
            interval = f"[{_fmt(metric.get('ci_low'))}, {_fmt(metric.get('ci_high'))}] ({level})"
            rows.append([name, _fmt(metric["value"]), interval, str(metric.get("n")), ""])
        lines += [*markdown_table(["metric", "value", "confidence interval", "n", "note"], rows), ""]
    return lines or ["No evaluation was recorded.", ""]


def _production(facts: dict[str, Any]) -> list[str]:
    custom, job = facts["customization"], facts["job"]
    engine = custom.get("engine") or {}
    losses = ""
    if custom.get("first_train_loss") is not None:
        losses = f"; training loss {_fmt(custom['first_train_loss'])} → {_fmt(custom['final_train_loss'])}"
    if custom.get("best_val_loss") is not None:
        losses += f", best validation loss {_fmt(custom['best_val_loss'])}"
    ran_on = f" on {engine['device']}/{engine['dtype']}" if engine.get("device") else ""
    lines = [
        f"1. flywheel run `{job['id']}` ({job['status']}, {job['started_at']} → {job['finished_at']}) selected and "
        "curated the logged records of this workload (validation, de-duplication), then split them into "
        "eval / train / validation sets.",
        "2. The base model was scored on the eval split as is and with in-context examples.",
        f"3. LoRA fine-tuning{ran_on}: {custom.get('steps_completed')} steps, {custom.get('epochs_completed')} "
        f"epoch(s), {_fmt(custom.get('runtime_seconds'))} s{losses}"
        + (" (stopped early)" if custom.get("stopped_early") else "")
        + f"; the adapter was saved at `{custom['adapter_path']}`.",
        "4. The fine-tuned model was scored on the same eval split (the scores above).",
    ]
    if facts["kind"] == "merged":
        lines.append(
            f"5. `flywheel export --merged` merged the adapter into the base weights (in float32) and saved them "
            f"as {facts['merged_dtype']} safetensors, with the tokenizer and a generation config."
        )
    else:
        lines.append("5. `flywheel export` copied the adapter files as the job saved them.")
    return lines


def load_snippet(facts: dict[str, Any]) -> list[str]:
    """Python lines that load the export with transformers (and PEFT for an adapter) and answer one prompt."""
    out_dir = facts["out_dir"]
    if facts["kind"] == "merged":
        load = [
            f"tokenizer = AutoTokenizer.from_pretrained({_py(out_dir)})",
            f"model = AutoModelForCausalLM.from_pretrained({_py(out_dir)}, dtype=torch.{facts['merged_dtype']})",
        ]
    else:
        load = [
            *_base_loading(facts["base_model"]),
            f"model = PeftModel.from_pretrained(base, {_py(out_dir)})",
        ]
    max_new = (facts.get("evaluation_config") or {}).get("max_new_tokens") or 64
    return [
        "import torch",
        *(["from peft import PeftModel"] if facts["kind"] == "adapter" else []),
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        *load,
        "model.eval()",
        "",
        'messages = [{"role": "user", "content": "Your prompt here"}]',
        "inputs = tokenizer.apply_chat_template(",
        '    messages, add_generation_prompt=True, return_tensors="pt", return_dict=True',
        ")",
        f"output = model.generate(**inputs, max_new_tokens={max_new}, do_sample=False)",
        'print(tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))',
    ]


def _py(text: str) -> str:
    """A Python string literal (JSON's double-quoted form is one)."""
    return json.dumps(text)


def _base_loading(base: dict[str, Any]) -> list[str]:
    source = base.get("source")
    if source and source.get("gguf_file"):
        # GGUF weights are dequantised by transformers on load; that is how flywheel ran this base model too.
        args = f"{_py(source['path'])}, gguf_file={_py(source['gguf_file'])}"
        return [
            f"tokenizer = AutoTokenizer.from_pretrained({args})",
            f"base = AutoModelForCausalLM.from_pretrained({args}, dtype=torch.float32)",
        ]
    where = source["path"] if source else base["model_path"]
    lines = (
        [] if source else [f"# The base model ran on the {base['backend']!r} backend: load its weights here."]
    )
    return [
        *lines,
        f"tokenizer = AutoTokenizer.from_pretrained({_py(where)})",
        f"base = AutoModelForCausalLM.from_pretrained({_py(where)}, dtype=torch.float32)",
    ]
