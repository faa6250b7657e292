"""The candidate sequence — base eval → ICL eval → customization → customized eval — written once.

:func:`candidate_sequence` is the order; the job runner plans its durable steps from it, and :func:`run_candidate`
runs it straight through in one call (a notebook, a script), with no store and no server::

    from flywheel.backends.registry import build_inference_backend, build_training_backend

    results = run_candidate(
        lambda adapter_dir: build_inference_backend(nim, adapter_dir=adapter_dir),
        {"eval": eval_records, "icl_eval": icl_records, "train": train, "val": val},
        trainer=build_training_backend(nim, training_config, lora_config),
        out_dir=Path("adapters/my-candidate"),
    )
    results.evaluations[Experiment.CUSTOMIZED_EVAL].scores
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from flywheel.backends import InferenceBackend, TrainingBackend
from flywheel.pipeline.evaluate import EvaluationResult, Judge
from flywheel.pipeline.experiments._customize import Customization, customize
from flywheel.pipeline.experiments._eval import EvalSettings, run_evaluation


class Experiment(StrEnum):
    """One experiment on a candidate (the values are the reference's ``eval_type`` names)."""

    BASE_EVAL = "base-eval"
    ICL_EVAL = "icl-eval"
    CUSTOMIZATION = "customization"
    CUSTOMIZED_EVAL = "customized-eval"


#: The dataset each evaluation answers (keys of a dataset build's artifacts).
EVAL_DATASET: dict[Experiment, str] = {
    Experiment.BASE_EVAL: "eval",
    Experiment.ICL_EVAL: "icl_eval",
    Experiment.CUSTOMIZED_EVAL: "eval",
}


def candidate_sequence(*, customize: bool) -> list[Experiment]:
    """The experiments of one candidate, in the order they run (fine-tuning only where it is enabled)."""
    sequence = [Experiment.BASE_EVAL, Experiment.ICL_EVAL]
    if customize:
        sequence += [Experiment.CUSTOMIZATION, Experiment.CUSTOMIZED_EVAL]
    return sequence


@dataclass
class CandidateResults:
    """What :func:`run_candidate` produced: an evaluation per eval experiment and the customization, if any."""

    evaluations: dict[Experiment, EvaluationResult] = field(default_factory=dict)
    customization: Customization | None = None


def run_candidate(
    inference: Callable[[Path | None], InferenceBackend],
    datasets: Mapping[str, Sequence[dict[str, Any]]],
    *,
    settings: EvalSettings | None = None,
    trainer: TrainingBackend | None = None,
    out_dir: Path | None = None,
    judge: Judge | None = None,
    no_judge_reason: str = "no LLM judge configured (llm_judge_config is null)",
) -> CandidateResults:
    """Run one candidate's experiments in :func:`candidate_sequence` order.

    Args:
        inference: builds the candidate's inference backend, given the fine-tuned adapter (``None``: the base
            model). Each backend is closed after its evaluation.
        datasets: records by artifact name: ``eval``, ``icl_eval`` (few-shot prompts), ``train``, ``val``.
        trainer: the candidate's training backend; ``None`` skips customization and the customized eval.
        out_dir: where the adapter is saved (required with ``trainer``).
        judge: the LLM judge for judge metrics (``None``: they are reported as not computed).
    """
    if trainer is not None and out_dir is None:
        raise ValueError("run_candidate needs out_dir to save the adapter of a customization")
    results = CandidateResults()
    for experiment in candidate_sequence(customize=trainer is not None):
        if experiment is Experiment.CUSTOMIZATION:
            assert trainer is not None and out_dir is not None
            results.customization = customize(trainer, datasets["train"], datasets.get("val", []), out_dir)
            continue
        adapter_dir = results.customization.adapter_dir if results.customization is not None else None
        backend = inference(adapter_dir if experiment is Experiment.CUSTOMIZED_EVAL else None)
        try:
            results.evaluations[experiment] = run_evaluation(
                backend,
                datasets[EVAL_DATASET[experiment]],
                settings,
                judge=judge,
                no_judge_reason=no_judge_reason,
            )
        finally:
            backend.close()
    return results
