"""Experiments on one candidate: base eval, few-shot (ICL) eval, LoRA customization and the customized eval.

Plain library code: a backend, records and callbacks in; an evaluation result or an adapter with its loss curves
out — no store, no server. :func:`run_candidate` runs the whole candidate sequence in one call; the job runner
(:mod:`flywheel.service.jobs`) runs the same experiments as durable steps and persists what they produce.
"""

from flywheel.pipeline.experiments._candidate import (
    EVAL_DATASET,
    CandidateResults,
    Experiment,
    candidate_sequence,
    run_candidate,
)
from flywheel.pipeline.experiments._customize import Customization, LossCurves, customize
from flywheel.pipeline.experiments._eval import (
    EvalSettings,
    answer_token_budget,
    generate_answers,
    run_evaluation,
)

__all__ = [
    "EVAL_DATASET",
    "CandidateResults",
    "Customization",
    "EvalSettings",
    "Experiment",
    "LossCurves",
    "answer_token_budget",
    "candidate_sequence",
    "customize",
    "generate_answers",
    "run_candidate",
    "run_evaluation",
]
