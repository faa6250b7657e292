"""Customization: LoRA-fine-tune a candidate on the training set and keep its loss curves."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.backends import TrainedAdapter, TrainingBackend, TrainingProgress
from flywheel.errors import DataError


@dataclass
class LossCurves:
    """``[step, value]`` points of the training loss, validation loss and throughput, as training reports them."""

    train_loss: list[list[float]] = field(default_factory=list)
    val_loss: list[list[float]] = field(default_factory=list)
    tokens_per_s: list[list[float]] = field(default_factory=list)

    def add(self, progress: TrainingProgress) -> None:
        """Record one progress report."""
        if progress.loss is not None:
            self.train_loss.append([progress.step, progress.loss])
        if progress.val_loss is not None:
            self.val_loss.append([progress.step, progress.val_loss])
        if progress.tokens_per_s is not None:
            self.tokens_per_s.append([progress.step, progress.tokens_per_s])

    def to_json(self) -> dict[str, list[list[float]]]:
        return {"train_loss": self.train_loss, "val_loss": self.val_loss, "tokens_per_s": self.tokens_per_s}


@dataclass
class Customization:
    """A finished fine-tuning: the adapter and its curves."""

    adapter: TrainedAdapter
    curves: LossCurves

    @property
    def adapter_dir(self) -> Path:
        return self.adapter.adapter_dir

    def metrics(self) -> dict[str, Any]:
        """The stored training figures: loss curves, the engine's summary and whether it stopped early."""
        return {
            **self.curves.to_json(),
            "summary": self.adapter.metrics,
            "stopped_early": self.adapter.stopped_early,
        }


def customize(
    trainer: TrainingBackend,
    train: Sequence[dict[str, Any]],
    val: Sequence[dict[str, Any]],
    out_dir: Path,
    *,
    curves: LossCurves | None = None,
    on_progress: Callable[[TrainingProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Customization:
    """Fine-tune with ``trainer`` on ``train`` (validating on ``val``) and save the adapter under ``out_dir``.

    Progress reports go into ``curves`` (pass one to see the curves of a run that fails or is cancelled) and then
    to ``on_progress``. ``should_stop`` is polled between training steps (raises :class:`JobCancelled`). The
    finished curves are the engine's own loss records where it keeps them.

    Raises:
        DataError: the training set is empty.
    """
    if not train:
        raise DataError("The training set is empty; lower data_split_config.eval_size or ingest more logs.")
    curves = curves if curves is not None else LossCurves()

    def progress(report: TrainingProgress) -> None:
        curves.add(report)
        if on_progress is not None:
            on_progress(report)

    adapter = trainer.train(train, val, Path(out_dir), on_progress=progress, should_stop=should_stop)
    curves.train_loss = [[s, v] for s, v in adapter.train_losses] or curves.train_loss
    curves.val_loss = [[s, v] for s, v in adapter.val_losses] or curves.val_loss
    return Customization(adapter, curves)
