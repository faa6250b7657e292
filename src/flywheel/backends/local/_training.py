"""LoRA supervised fine-tuning of a local model with PEFT.

The loop is hand-written (PEFT adds the adapters; the loop is ~100 lines) because three things make it several times
faster on a CPU than ``transformers.Trainer`` configured the common way, which ``benchmarks/engine.py`` measures:

* length-grouped batches with dynamic padding (no padding every example to ``max_seq_length``);
* the frozen base model runs in bfloat16 where that is faster (adapters and optimizer state stay float32);
* the vocabulary projection (a quarter of SmolLM2's weights) runs only at positions that carry a label, since the
  loss is on assistant tokens only — for classification answers that is a handful of positions per example.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flywheel.backends._types import TrainedAdapter, TrainingProgress
from flywheel.backends.local._chat import training_ids
from flywheel.backends.local._loading import base_model_copy, quiet_peft_wrapping, require_local
from flywheel.backends.local._merge import save_model_folder
from flywheel.backends.local._sources import ModelSource, resolve_model_source
from flywheel.backends.local._threads import ThreadLease, engine_step
from flywheel.errors import BackendError, DataError, JobCancelled

log = logging.getLogger(__name__)

#: Attention and MLP projections of Llama/Qwen/Mistral/Gemma-style models.
DEFAULT_TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class LoRAParams:
    """LoRA adapter shape."""

    rank: int = 16
    alpha: int | None = None  # default 2 × rank
    dropout: float = 0.05
    target_modules: list[str] | None = None  # default DEFAULT_TARGET_MODULES


@dataclass
class TrainingParams:
    """Optimisation settings of one fine-tuning run."""

    epochs: int = 2
    batch_size: int = 8  # examples per optimizer step
    learning_rate: float = 1e-4
    max_steps: int | None = None
    eval_every_steps: int | None = None  # None: validate once per epoch
    early_stopping_patience: int | None = None  # validations without improvement before stopping
    max_seq_length: int = 1024  # tokens; longer conversations are cut at the end
    seed: int = 42
    micro_batch_size: int | None = (
        None  # split a step into micro-batches (gradient accumulation) to save memory
    )
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    merge: bool = False  # also save the base model with the adapter merged in (a full model folder)


@dataclass
class _Example:
    ids: list[int]
    labels: list[int]


@dataclass
class _Run:
    train_losses: list[tuple[int, float]] = field(default_factory=list)
    val_losses: list[tuple[int, float]] = field(default_factory=list)
    best_val: float = math.inf
    best_state: dict[str, Any] | None = None
    bad_validations: int = 0
    stopped_early: bool = False
    tokens: int = 0
    train_s: float = 0.0


class LocalTrainingBackend:
    """Fine-tunes a local model with LoRA on OpenAI-format conversations (loss on assistant tokens only).

    Args:
        model: packaged short name, local HF directory, local GGUF file or hub id (default: the packaged SmolLM2).
        training: optimisation settings (see :class:`TrainingParams`).
        lora: adapter shape (see :class:`LoRAParams`).
        device: ``auto`` (default), ``cpu``, ``cuda`` or ``cuda:N``.
        dtype: dtype of the frozen base weights: ``auto`` (default), ``bfloat16``, ``float16`` or ``float32``.
        cache_dir: folder for the one-time GGUF → safetensors conversion.
        cpu_threads: this process's CPU thread budget (``FLYWHEEL_CPU_THREADS``; default: every core it may use). A
            run on the CPU trains on its share of it, re-divided between optimizer steps (see
            :mod:`~flywheel.backends.local._threads`).
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        training: TrainingParams | None = None,
        lora: LoRAParams | None = None,
        device: str | None = None,
        dtype: str | None = None,
        cache_dir: str | Path | None = None,
        cpu_threads: int | None = None,
    ) -> None:
        require_local()
        self.source: ModelSource = resolve_model_source(model)
        self.cpu_threads = cpu_threads
        self.training = training or TrainingParams()
        self.lora = lora or LoRAParams()
        self._device_arg = device
        self._dtype_arg = dtype
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None

    def train(
        self,
        train: Sequence[dict[str, Any]],
        val: Sequence[dict[str, Any]],
        out_dir: Path,
        on_progress: Callable[[TrainingProgress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> TrainedAdapter:
        """Train an adapter on ``train`` (validating on ``val``) and save it under ``out_dir/adapter``.

        ``should_stop`` is checked before every step and every validation; when it returns true the run ends with
        :class:`~flywheel.errors.JobCancelled` (a ``JobCancelled`` raised by ``should_stop`` itself propagates too).
        With early stopping, the adapter saved is the one with the best validation loss.
        """
        from flywheel.backends.local._device import choose_device

        device = choose_device(self._device_arg)
        with engine_step(self.cpu_threads, device=device) as lease:
            return self._train(train, val, out_dir, on_progress, should_stop, device, lease)

    def _train(
        self,
        train: Sequence[dict[str, Any]],
        val: Sequence[dict[str, Any]],
        out_dir: Path,
        on_progress: Callable[[TrainingProgress], None] | None,
        should_stop: Callable[[], bool] | None,
        device: str,
        lease: ThreadLease,
    ) -> TrainedAdapter:
        import torch

        from flywheel.backends.local._device import choose_dtype

        params = self.training
        dtype = choose_dtype(device, self._dtype_arg)
        # Seed before anything random happens (LoRA init, dropout, data order) so runs repeat exactly.
        torch.manual_seed(params.seed)
        rng = random.Random(params.seed)

        model, tokenizer = base_model_copy(self.source, device, dtype, self.cache_dir)
        train_set = _encode(tokenizer, train, params.max_seq_length, "training")
        val_set = _encode(tokenizer, val, params.max_seq_length, "validation") if val else []
        if not train_set:
            raise DataError(
                "No training example has an assistant answer within max_seq_length tokens; check the training data "
                "or raise training_config.max_seq_length."
            )
        peft_model = self._wrap(model)
        optimizer, scheduler, total_steps, steps_per_epoch = self._optimiser(peft_model, len(train_set))
        run = _Run()
        step = 0
        try:
            while step < total_steps:
                for batch in _length_grouped_batches(train_set, params.batch_size, rng):
                    if step >= total_steps:
                        break
                    _check_stop(should_stop, step, total_steps)
                    lease.rebalance()  # a checkpoint: the share follows the steps running beside this one
                    start = time.perf_counter()
                    loss, tokens = self._step(peft_model, batch, device)
                    torch.nn.utils.clip_grad_norm_(
                        [p for p in peft_model.parameters() if p.requires_grad], params.max_grad_norm
                    )
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    elapsed = time.perf_counter() - start
                    step += 1
                    run.tokens += tokens
                    run.train_s += elapsed
                    run.train_losses.append((step, loss))
                    val_loss = None
                    end_of_epoch = step % steps_per_epoch == 0
                    due = (step % params.eval_every_steps == 0) if params.eval_every_steps else end_of_epoch
                    if val_set and (due or step == total_steps):
                        _check_stop(should_stop, step, total_steps)
                        val_loss = self._validate(peft_model, val_set, device, run, step)
                    if on_progress is not None:
                        on_progress(
                            TrainingProgress(
                                step=step,
                                total_steps=total_steps,
                                epoch=step / steps_per_epoch,
                                loss=loss,
                                val_loss=val_loss,
                                tokens_per_s=tokens / elapsed if elapsed > 0 else None,
                            )
                        )
                    if run.stopped_early:
                        break
                if run.stopped_early:
                    break
        except torch.OutOfMemoryError as exc:
            raise BackendError(
                f"Out of memory while fine-tuning {self.source.spec!r}: lower training_config.batch_size or "
                "max_seq_length (or set a micro batch size)."
            ) from exc
        return self._save(peft_model, tokenizer, out_dir, run, step, steps_per_epoch, device, dtype)

    # ------------------------------------------------------------------------------------------------ pieces

    def _wrap(self, model: Any) -> Any:
        from peft import LoraConfig, get_peft_model

        lora = self.lora
        config = LoraConfig(
            r=lora.rank,
            lora_alpha=lora.alpha or 2 * lora.rank,
            lora_dropout=lora.dropout,
            target_modules=list(lora.target_modules or DEFAULT_TARGET_MODULES),
            bias="none",
            task_type="CAUSAL_LM",
        )
        try:
            # PEFT keeps the adapter weights in float32 even on a bf16 base (autocast_adapter_dtype).
            with quiet_peft_wrapping():
                peft_model = get_peft_model(model, config)
        except ValueError as exc:
            raise BackendError(
                f"Could not add LoRA adapters to {self.source.spec!r}: {exc}. Check lora_config.target_modules."
            ) from exc
        peft_model.train()
        return peft_model

    def _optimiser(self, peft_model: Any, n_examples: int) -> tuple[Any, Any, int, int]:
        import torch

        params = self.training
        steps_per_epoch = math.ceil(n_examples / params.batch_size)
        total = steps_per_epoch * params.epochs
        if params.max_steps is not None:
            total = min(total, params.max_steps)
        trainable = [p for p in peft_model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=params.learning_rate, weight_decay=params.weight_decay)
        warmup = int(total * params.warmup_ratio)

        def schedule(step: int) -> float:  # linear warm-up, then linear decay to 10 % of the peak
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return max(0.1, 1.0 - 0.9 * (step - warmup) / max(1, total - warmup))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return optimizer, scheduler, total, steps_per_epoch

    def _step(self, peft_model: Any, batch: list[_Example], device: str) -> tuple[float, int]:
        micro = self.training.micro_batch_size or len(batch)
        label_tokens = sum(sum(1 for t in e.labels[1:] if t != -100) for e in batch)
        total = 0.0
        tokens = 0
        for start in range(0, len(batch), micro):
            chunk = batch[start : start + micro]
            loss_sum, _ = _loss(peft_model, chunk, device)
            # Normalise by the whole step's label tokens so micro-batching does not change the gradient.
            (loss_sum / label_tokens).backward()
            total += float(loss_sum.detach())
            tokens += sum(len(e.ids) for e in chunk)
        return total / label_tokens, tokens

    def _validate(self, peft_model: Any, val_set: list[_Example], device: str, run: _Run, step: int) -> float:
        import torch
        from peft import get_peft_model_state_dict

        peft_model.eval()
        total = 0.0
        count = 0
        with torch.no_grad():
            ordered = sorted(val_set, key=lambda e: len(e.ids))
            size = max(1, self.training.micro_batch_size or self.training.batch_size)
            for start in range(0, len(ordered), size):
                loss_sum, n = _loss(peft_model, ordered[start : start + size], device)
                total += float(loss_sum)
                count += n
        peft_model.train()
        val_loss = total / max(1, count)
        run.val_losses.append((step, val_loss))
        if val_loss < run.best_val - 1e-4:
            run.best_val = val_loss
            run.bad_validations = 0
            if self.training.early_stopping_patience:
                run.best_state = {
                    k: v.detach().clone() for k, v in get_peft_model_state_dict(peft_model).items()
                }
        else:
            run.bad_validations += 1
            patience = self.training.early_stopping_patience
            if patience and run.bad_validations >= patience:
                run.stopped_early = True
        return val_loss

    def _save(
        self,
        peft_model: Any,
        tokenizer: Any,
        out_dir: Path,
        run: _Run,
        step: int,
        steps_per_epoch: int,
        device: str,
        dtype: Any,
    ) -> TrainedAdapter:
        from peft import set_peft_model_state_dict

        if run.best_state is not None and run.val_losses and run.val_losses[-1][1] > run.best_val:
            set_peft_model_state_dict(peft_model, run.best_state)
        out_dir = Path(out_dir)
        adapter_dir = out_dir / "adapter"
        for config in peft_model.peft_config.values():
            config.base_model_name_or_path = self.source.spec  # not the dequantised folder's temporary name
        # save_embedding_layers=False: embeddings are frozen, and "auto" makes PEFT look the base model up online.
        peft_model.save_pretrained(str(adapter_dir), save_embedding_layers=False)
        metrics: dict[str, Any] = {
            "train_tokens": run.tokens,
            "train_seconds": run.train_s,
            "tokens_per_s": run.tokens / run.train_s if run.train_s > 0 else None,
            "best_val_loss": run.best_val if run.val_losses else None,
            "device": device,
            "dtype": str(dtype).removeprefix("torch."),
        }
        meta = {
            "base_model": self.source.spec,
            "training": asdict(self.training),
            "lora": asdict(self.lora),
            "metrics": metrics,
            "train_losses": run.train_losses,
            "val_losses": run.val_losses,
        }
        (adapter_dir / "flywheel_training.json").write_text(json.dumps(meta, indent=2))
        merged_dir = None
        if self.training.merge:
            merged_dir = out_dir / "merged"
            save_model_folder(peft_model.merge_and_unload(), tokenizer, merged_dir, self.source.spec)
        return TrainedAdapter(
            adapter_dir=adapter_dir,
            base_model=self.source.spec,
            steps_completed=step,
            epochs_completed=step // steps_per_epoch,
            train_losses=run.train_losses,
            val_losses=run.val_losses,
            merged_dir=merged_dir,
            stopped_early=run.stopped_early,
            metrics=metrics,
        )


# ---------------------------------------------------------------------------------------------------- helpers


def _check_stop(should_stop: Callable[[], bool] | None, step: int, total: int) -> None:
    if should_stop is not None and should_stop():
        raise JobCancelled(f"Training cancelled after {step} of {total} steps.")


def _encode(tokenizer: Any, examples: Sequence[dict[str, Any]], max_length: int, what: str) -> list[_Example]:
    encoded = []
    for number, example in enumerate(examples):
        messages = example.get("messages")
        if not isinstance(messages, list):
            raise DataError(
                f"{what} example {number} has no 'messages' list; expected {{'messages': [...]}}."
            )
        ids, labels = training_ids(tokenizer, messages, example.get("tools"), max_length)
        # An example whose answer was cut away entirely teaches nothing (and would divide by zero).
        if any(t != -100 for t in labels[1:]):
            encoded.append(_Example(ids, labels))
    dropped = len(examples) - len(encoded)
    if dropped:
        log.warning("%d of %d %s examples have no assistant tokens within max_seq_length; skipped", dropped,
                    len(examples), what)  # fmt: skip
    return encoded


def _length_grouped_batches(
    examples: list[_Example], batch_size: int, rng: random.Random
) -> list[list[_Example]]:
    """Batches of similar length in random order: shuffle, sort within windows of 32 batches, shuffle batches."""
    order = list(range(len(examples)))
    rng.shuffle(order)
    window = batch_size * 32
    batches: list[list[_Example]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: len(examples[i].ids))
        batches.extend(
            [examples[i] for i in chunk[s : s + batch_size]] for s in range(0, len(chunk), batch_size)
        )
    rng.shuffle(batches)
    return batches


def _collate(batch: list[_Example], pad_id: int, device: str) -> tuple[Any, Any, Any]:
    import torch

    # Round the width up to a multiple of 16: a few padding tokens cost less than oneDNN/CUDA kernels being
    # re-planned for every new sequence length (noticeable in bf16 on CPU).
    width = -(-max(len(e.ids) for e in batch) // 16) * 16
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, example in enumerate(batch):  # right padding: positions start at 0 for every row
        n = len(example.ids)
        ids[row, :n] = torch.tensor(example.ids)
        labels[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
    return ids.to(device), labels.to(device), mask.to(device)


def _loss(peft_model: Any, batch: list[_Example], device: str) -> tuple[Any, int]:
    """Summed cross-entropy over label tokens of ``batch`` and how many there are."""
    import torch.nn.functional as F

    lm = peft_model.get_base_model()
    pad_id = 0  # any id: padded positions are masked out of attention and carry no label
    ids, labels, mask = _collate(batch, pad_id, device)
    targets = labels[:, 1:]
    selected = targets != -100
    decoder = lm.get_decoder() if hasattr(lm, "get_decoder") else None
    head = lm.get_output_embeddings()
    if (
        decoder is not None
        and head is not None
        and getattr(lm.config, "final_logit_softcapping", None) is None
    ):
        hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state
        # Project to the vocabulary only where a label is; the rest of the logits would be thrown away.
        logits = head(hidden[:, :-1][selected])
    else:  # models whose head does more than a projection: the ordinary full forward
        logits = lm(input_ids=ids, attention_mask=mask).logits[:, :-1][selected]
    loss = F.cross_entropy(logits.float(), targets[selected], reduction="sum")
    return loss, int(selected.sum())
