"""LoRA fine-tuning of the packaged model: it learns, leaves the base alone, can be cancelled, and repeats exactly."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from backends.local.local_engine_data import example, prompt, split_headlines
from flywheel.backends import ChatRequest, TrainedAdapter, TrainingProgress
from flywheel.errors import JobCancelled

pytestmark = pytest.mark.slow


def _accuracy(backend: Any, held_out: list[tuple[str, str]]) -> float:
    answers = backend.generate([ChatRequest(messages=prompt(h), max_tokens=3) for h, _ in held_out])
    assert all(a.error is None for a in answers)
    words = [(a.content or "").strip().lower().split() for a in answers]
    return sum(
        bool(w) and w[0].strip(".,:") == topic for w, (_, topic) in zip(words, held_out, strict=True)
    ) / len(held_out)


@dataclass
class _Run:
    adapter: TrainedAdapter
    progress: list[TrainingProgress]
    base_accuracy: float
    tuned_accuracy: float
    base_before: dict[str, Any]
    base_after: dict[str, Any]


@pytest.fixture(scope="module")
def classification_run(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> _Run:
    """Why: one real fine-tune (≈ a minute on 2 CPU cores) backs several assertions about it."""
    from flywheel.backends.local import (
        LocalInferenceBackend,
        LocalTrainingBackend,
        LoRAParams,
        TrainingParams,
    )

    train, held_out = split_headlines()
    base = LocalInferenceBackend(cache_dir=model_cache)
    base_model = base.load().model
    base_before = {k: v.detach().clone() for k, v in base_model.state_dict().items() if "layers.0." in k}
    base_accuracy = _accuracy(base, held_out)

    progress: list[TrainingProgress] = []
    trainer = LocalTrainingBackend(
        cache_dir=model_cache,
        training=TrainingParams(epochs=3, batch_size=8, learning_rate=1e-3, max_steps=12, seed=7, merge=True),
        lora=LoRAParams(rank=8, dropout=0.0),
    )
    out = tmp_path_factory.mktemp("classification")
    adapter = trainer.train(
        [example(h, t) for h, t in train],
        [example(h, t) for h, t in held_out[:5]],
        out,
        on_progress=progress.append,
    )
    base_after = {k: v.detach().clone() for k, v in base_model.state_dict().items() if "layers.0." in k}
    tuned = LocalInferenceBackend(adapter_dir=adapter.adapter_dir, cache_dir=model_cache)
    tuned_accuracy = _accuracy(tuned, held_out)
    tuned.close()
    base.close()
    return _Run(adapter, progress, base_accuracy, tuned_accuracy, base_before, base_after)


def test_training_loss_goes_down(classification_run: _Run) -> None:
    losses = [loss for _, loss in classification_run.adapter.train_losses]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:3]) / 3


def test_fine_tuned_model_beats_the_base_model_on_held_out_headlines(classification_run: _Run) -> None:
    assert classification_run.tuned_accuracy > classification_run.base_accuracy
    assert classification_run.tuned_accuracy >= 0.5


def test_base_weights_are_unchanged(classification_run: _Run) -> None:
    import torch

    before, after = classification_run.base_before, classification_run.base_after
    assert before.keys() == after.keys() and before
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_adapter_weights_changed_and_are_saved_in_peft_format(classification_run: _Run) -> None:
    import json

    from safetensors.torch import load_file

    adapter_dir = classification_run.adapter.adapter_dir
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 8
    assert config["base_model_name_or_path"] == "smollm2-135m-instruct"
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert lora_b and len(lora_b) == 30 * 7  # every layer's attention and MLP projections
    # PEFT initialises B to zero; trained B matrices are not.
    assert all(float(v.abs().sum()) > 0 for v in lora_b)


def test_progress_reports_every_step_with_validation_at_the_end(classification_run: _Run) -> None:
    progress = classification_run.progress
    assert [p.step for p in progress] == list(range(1, 13))
    assert all(p.total_steps == 12 and p.loss is not None and (p.tokens_per_s or 0) > 0 for p in progress)
    assert progress[4].epoch == pytest.approx(1.0)  # 40 examples / batch 8 = 5 steps per epoch
    validated = [p.step for p in progress if p.val_loss is not None]
    assert validated == [5, 10, 12]  # each epoch end, and the last step
    assert classification_run.adapter.val_losses[-1][1] < classification_run.adapter.val_losses[0][1] * 1.5


def test_merged_model_is_saved_as_a_loadable_hf_folder(classification_run: _Run) -> None:
    from flywheel.backends.local import resolve_model_source

    merged = classification_run.adapter.merged_dir
    assert merged is not None and (merged / "config.json").is_file()
    assert "quantization_config" not in (merged / "config.json").read_text()
    assert resolve_model_source(str(merged)).kind == "hf_dir"


def _tiny_examples() -> list[dict[str, Any]]:
    train, _ = split_headlines()
    return [example(h, t) for h, t in train[:8]]


def test_cancellation_stops_between_steps(model_cache: Path, tmp_path: Path) -> None:
    from flywheel.backends.local import LocalTrainingBackend, LoRAParams, TrainingParams

    progress: list[TrainingProgress] = []
    trainer = LocalTrainingBackend(
        cache_dir=model_cache,
        training=TrainingParams(epochs=5, batch_size=2, max_steps=10),
        lora=LoRAParams(rank=4),
    )
    with pytest.raises(JobCancelled, match="after 2 of 10 steps"):
        trainer.train(
            _tiny_examples(),
            [],
            tmp_path,
            on_progress=progress.append,
            should_stop=lambda: len(progress) >= 2,
        )
    assert [p.step for p in progress] == [1, 2]
    assert not (tmp_path / "adapter").exists()


def test_same_seed_gives_the_same_losses_and_another_seed_does_not(model_cache: Path, tmp_path: Path) -> None:
    from flywheel.backends.local import LocalTrainingBackend, LoRAParams, TrainingParams

    def losses(seed: int, name: str) -> list[float]:
        trainer = LocalTrainingBackend(
            cache_dir=model_cache,
            training=TrainingParams(epochs=1, batch_size=2, max_steps=3, seed=seed, learning_rate=1e-3),
            lora=LoRAParams(rank=4, dropout=0.1),
        )
        return [loss for _, loss in trainer.train(_tiny_examples(), [], tmp_path / name).train_losses]

    first, second, other = losses(1, "a"), losses(1, "b"), losses(2, "c")
    assert first == pytest.approx(second, rel=1e-6, abs=1e-7)
    assert first != pytest.approx(other, rel=1e-6, abs=1e-7)


def test_early_stopping_keeps_the_best_adapter(model_cache: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from flywheel.backends.local import LocalTrainingBackend, LoRAParams, TrainingParams

    def run(max_steps: int, patience: int | None, name: str) -> TrainedAdapter:
        trainer = LocalTrainingBackend(
            cache_dir=model_cache,
            training=TrainingParams(
                epochs=5,
                batch_size=2,
                max_steps=max_steps,
                learning_rate=0.5,
                eval_every_steps=1,
                early_stopping_patience=patience,
            ),
            lora=LoRAParams(rank=4, dropout=0.0),
        )
        examples = _tiny_examples()
        return trainer.train(examples[:4], examples[4:6], tmp_path / name)

    # A learning rate far too high makes validation loss rise after the first step; patience 1 stops the run there.
    stopped = run(6, 1, "stopped")
    assert stopped.stopped_early and stopped.steps_completed == 2
    assert [step for step, _ in stopped.val_losses] == [1, 2]
    assert stopped.val_losses[1][1] > stopped.val_losses[0][1]
    assert stopped.metrics["best_val_loss"] == stopped.val_losses[0][1]
    # The adapter saved is the step-1 state: the same as a (deterministic) run that stops after one step.
    one_step = run(1, None, "one-step")
    saved = load_file(str(stopped.adapter_dir / "adapter_model.safetensors"))
    expected = load_file(str(one_step.adapter_dir / "adapter_model.safetensors"))
    assert saved.keys() == expected.keys()
    assert all(torch.equal(saved[k], expected[k]) for k in saved)
