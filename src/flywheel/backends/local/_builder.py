"""Config objects → the plain parameters of the local engine (config stops at this edge)."""

from __future__ import annotations

from flywheel.backends.local._training import LoRAParams, TrainingParams
from flywheel.config._models import CustomizerConfig, LoRAConfig, TrainingConfig

#: Used when neither training_config.max_seq_length nor customizer_configs.max_seq_length is set.
FALLBACK_MAX_SEQ_LENGTH = 1024


def training_params(
    training: TrainingConfig,
    lora: LoRAConfig,
    customizer: CustomizerConfig | None = None,
    *,
    merge: bool = False,
) -> tuple[TrainingParams, LoRAParams]:
    """Map the blueprint's ``training_config``/``lora_config`` (and a candidate's ``customizer_configs``)."""
    max_seq = training.max_seq_length
    if max_seq is None:
        max_seq = customizer.max_seq_length if customizer is not None else FALLBACK_MAX_SEQ_LENGTH
    micro = (
        customizer.micro_batch_size if customizer is not None and customizer.micro_batch_size > 1 else None
    )
    return (
        TrainingParams(
            epochs=training.epochs,
            batch_size=training.batch_size,
            learning_rate=training.learning_rate,
            max_steps=training.max_steps,
            eval_every_steps=training.eval_every_steps,
            early_stopping_patience=training.early_stopping_patience,
            max_seq_length=max_seq,
            seed=training.seed,
            micro_batch_size=micro,
            merge=merge,
        ),
        LoRAParams(
            rank=lora.adapter_dim,
            alpha=lora.adapter_alpha,
            dropout=lora.adapter_dropout,
            target_modules=list(lora.target_modules) if lora.target_modules else None,
        ),
    )
