"""The candidate sequence as a notebook runs it: plain records in, scores and an adapter out — no store, no server.

This is the real engine (the packaged SmolLM2-135M-Instruct on this machine's CPU), kept small: 12 eval records,
a few LoRA steps.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import pytest

from flywheel.backends.registry import build_inference_backend, build_training_backend
from flywheel.config import ICLConfig, LoRAConfig, NIMConfig, TrainingConfig
from flywheel.pipeline.datasets import to_eval_record, to_training_example
from flywheel.pipeline.demo_data import classification_logs
from flywheel.pipeline.experiments import EvalSettings, Experiment, candidate_sequence, run_candidate
from flywheel.pipeline.icl import build_icl_records

pytestmark = pytest.mark.slow


def test_candidate_sequence_order_is_base_icl_customize_customized() -> None:
    assert candidate_sequence(customize=True) == [
        Experiment.BASE_EVAL,
        Experiment.ICL_EVAL,
        Experiment.CUSTOMIZATION,
        Experiment.CUSTOMIZED_EVAL,
    ]
    assert candidate_sequence(customize=False) == [Experiment.BASE_EVAL, Experiment.ICL_EVAL]


def test_a_notebook_runs_base_icl_customize_and_customized_eval_on_the_packaged_model(tmp_path: Path) -> None:
    logs = [to_eval_record(r) for r in islice(classification_logs(), 60)]
    eval_records, train_records = logs[:12], logs[12:]
    icl_records, _ = build_icl_records(
        eval_records,
        train_records,
        ICLConfig(max_examples=2, min_examples=1, example_selection="uniform_distribution"),
        workload_type="classification",
    )
    datasets = {
        "eval": eval_records,
        "icl_eval": icl_records,
        "train": [to_training_example(r, "classification") for r in train_records[:40]],
        "val": [to_training_example(r, "classification") for r in train_records[40:]],
    }
    nim = NIMConfig(model_name="smollm2-135m-instruct", backend="local", model_path="smollm2-135m-instruct")
    cache = tmp_path / "model-cache"
    env = {"FLYWHEEL_DTYPE": "float32"}
    trainer = build_training_backend(
        nim,
        TrainingConfig(epochs=1, batch_size=4, learning_rate=1e-3, max_steps=8, seed=7),
        LoRAConfig(adapter_dim=8, adapter_alpha=16),
        cache_dir=cache,
        env=env,
    )

    results = run_candidate(
        lambda adapter_dir: build_inference_backend(nim, adapter_dir=adapter_dir, cache_dir=cache, env=env),
        datasets,
        settings=EvalSettings(workload_type="classification", bootstrap_samples=200, seed=3),
        trainer=trainer,
        out_dir=tmp_path / "adapter",
    )

    assert list(results.evaluations) == [
        Experiment.BASE_EVAL,
        Experiment.ICL_EVAL,
        Experiment.CUSTOMIZED_EVAL,
    ]
    for result in results.evaluations.values():
        f1 = result.metrics["f1_score"]
        assert f1.n == 12 and f1.value is not None and f1.ci_low <= f1.value <= f1.ci_high
    # the few-shot eval answered the ICL prompts, which carry examples the base prompts do not
    base = results.evaluations[Experiment.BASE_EVAL]
    assert len(results.evaluations[Experiment.ICL_EVAL].samples) == len(base.samples) == 12
    # fine-tuning ran, saved an adapter, recorded its curves, and the customized eval used it
    custom = results.customization
    assert custom is not None
    assert (custom.adapter_dir / "adapter_model.safetensors").is_file()
    losses = [v for _, v in custom.curves.train_loss]
    assert len(losses) >= 2 and losses[-1] < losses[0]
    tuned = results.evaluations[Experiment.CUSTOMIZED_EVAL]
    assert [s.candidate for s in tuned.samples] != [s.candidate for s in base.samples]
