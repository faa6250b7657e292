"""Experiments on one candidate: answer an eval set (base or few-shot) and fine-tune it with LoRA.

Plain library code: a backend, records and callbacks in; generations, an evaluation result or an adapter out.
The job runner (:mod:`flywheel.service.jobs`) persists what these produce.
"""

from flywheel.pipeline.experiments._eval import answer_token_budget, generate_answers, run_evaluation

__all__ = ["answer_token_budget", "generate_answers", "run_evaluation"]
