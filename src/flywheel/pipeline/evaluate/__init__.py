"""Evaluation: score candidate answers against the teacher's logged answers, with intervals and evidence.

Entry points::

    generations = candidate_backend.generate(candidate_requests(eval_records))
    judge = build_judge(llm_judge_config, api_key)            # or None: judge metrics "not computed"
    result = evaluate(eval_records, generations, "auto", judge, candidate_model="my-model")
    result.scores            # {"f1_score": 0.82, "accuracy": 0.85, ...}  (reference keys)
    result.to_json()         # metrics with n / ci_low / ci_high, usage, classification report, samples
    compare(result_base, result_tuned)["f1_score"].difference  # paired difference with its interval

Scores by workload type (each also in ``metrics`` with ``n``, ``ci_low``, ``ci_high``):

* classification — ``f1_score`` (macro-F1 over the teacher's label set; definitions in
  :mod:`flywheel.pipeline.evaluate._classification`), ``accuracy``, ``f1_weighted``; plus per-class
  precision/recall/F1 and the confusion matrix under ``classification``.
* tool_calling — ``function_name``, ``function_name_and_args_accuracy``, ``function_args_f1`` (judge-free, see
  :mod:`flywheel.pipeline.evaluate._tool_calling`), ``tool_calling_correctness`` (LLM judge, 0/1).
* generic — ``similarity`` (LLM judge, rating 1–10 divided by 10), ``rouge_l``, ``token_f1``.

Each workload type's rules — its metrics, its judge metric, its headline metric, when no judge is used — are its
scorer's: ``scorer_for("generic").primary_metric(computed)``, ``scorer_for(t).no_judge_reason(tool_eval_type=…)``.

Usage (``usage`` in the JSON): ``latency_p50_s``, ``latency_p95_s``, ``prompt_tokens_mean``,
``completion_tokens_mean``, and the teacher's logged ``teacher_prompt_tokens_mean``/``teacher_completion_tokens_mean``.
"""

from flywheel.pipeline.evaluate._answers import (
    Answer,
    answer_from_response,
    candidate_requests,
    detect_workload_type,
    prediction_to_generation,
    teacher_answer,
)
from flywheel.pipeline.evaluate._classification import (
    NO_LABEL,
    ClassificationReport,
    ClassScores,
    bracket_label,
    classification_report,
    extract_label,
    normalize_label,
)
from flywheel.pipeline.evaluate._compare import Comparison, compare
from flywheel.pipeline.evaluate._evaluate import (
    JUDGE_METRICS,
    METRICS,
    WORKLOAD_TYPES,
    EvaluationResult,
    MetricResult,
    SampleEvidence,
    evaluate,
    usage_metrics,
)
from flywheel.pipeline.evaluate._judge import (
    Grade,
    Judge,
    JudgeItem,
    JudgeTranscript,
    Scorer,
    SimilarityScorer,
    ToolCallCorrectnessScorer,
    build_judge,
    parse_binary_rating,
    parse_similarity,
    resolve_judge_api_key,
)
from flywheel.pipeline.evaluate._results import SAMPLE_SCORE_KEYS, sample_score
from flywheel.pipeline.evaluate._scorers import SCORERS, WorkloadScorer, scorer_for
from flywheel.pipeline.evaluate._stats import Interval, bootstrap, bootstrap_mean
from flywheel.pipeline.evaluate._text import rouge_l, token_f1
from flywheel.pipeline.evaluate._tool_calling import (
    NormalizedCall,
    arguments_f1,
    calls_exact_match,
    function_name_match,
    normalize_call,
    normalize_calls,
)

__all__ = [
    "JUDGE_METRICS",
    "METRICS",
    "NO_LABEL",
    "SAMPLE_SCORE_KEYS",
    "SCORERS",
    "WORKLOAD_TYPES",
    "Answer",
    "ClassScores",
    "ClassificationReport",
    "Comparison",
    "EvaluationResult",
    "Grade",
    "Interval",
    "Judge",
    "JudgeItem",
    "JudgeTranscript",
    "MetricResult",
    "NormalizedCall",
    "SampleEvidence",
    "Scorer",
    "SimilarityScorer",
    "ToolCallCorrectnessScorer",
    "WorkloadScorer",
    "answer_from_response",
    "arguments_f1",
    "bootstrap",
    "bootstrap_mean",
    "bracket_label",
    "build_judge",
    "calls_exact_match",
    "candidate_requests",
    "classification_report",
    "compare",
    "detect_workload_type",
    "evaluate",
    "extract_label",
    "function_name_match",
    "normalize_call",
    "normalize_calls",
    "normalize_label",
    "parse_binary_rating",
    "parse_similarity",
    "prediction_to_generation",
    "resolve_judge_api_key",
    "rouge_l",
    "sample_score",
    "scorer_for",
    "teacher_answer",
    "token_f1",
    "usage_metrics",
]
