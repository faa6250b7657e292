"""One scorer per workload type: its metrics, its judge metric, its headline metric and how it scores samples.

Every rule about a workload type is written here once — which metrics it reports, which of them an LLM judge grades,
when no judge is used, which metric a recommendation rests on — and the evaluator, the report and the job runner ask
:func:`scorer_for` instead of keeping their own copies::

    scorer = scorer_for("tool_calling")
    scorer.metrics                                          # primary (reference) key first
    scorer.judge_metrics                                    # frozenset({"tool_calling_correctness"})
    scorer.no_judge_reason(tool_eval_type="tool-calling-metric")  # "evaluation_config.tool_eval_type is ..."
    scorer.primary_metric(computed)                         # "function_name_and_args_accuracy"

A judge-graded metric is described by a :class:`JudgeRule` (the judge's prompt/parser, the cases settled without
asking it, and what it is shown); :func:`grade_with_judge` is the one procedure that applies such a rule.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from flywheel.errors import DataError
from flywheel.pipeline.evaluate._answers import prompt_messages
from flywheel.pipeline.evaluate._classification import (
    LABEL_STATISTICS,
    ClassificationReport,
    classification_report,
    encode_labels,
    extract_label,
)
from flywheel.pipeline.evaluate._judge import (
    Grade,
    Judge,
    JudgeItem,
    JudgeTranscript,
    Scorer,
    SimilarityScorer,
    ToolCallCorrectnessScorer,
)
from flywheel.pipeline.evaluate._results import MetricResult, SampleEvidence
from flywheel.pipeline.evaluate._stats import bootstrap, bootstrap_mean
from flywheel.pipeline.evaluate._text import rouge_l, token_f1
from flywheel.pipeline.evaluate._tool_calling import (
    arguments_f1,
    calls_exact_match,
    function_name_match,
    normalize_calls,
)

#: The aggregates and the per-workload classification report :meth:`WorkloadScorer.score` returns.
Scored = tuple[dict[str, MetricResult], ClassificationReport | None]


class WorkloadScorer(Protocol):
    """Everything the evaluator, the report and the job runner need to know about one workload type."""

    @property
    def workload_type(self) -> str:
        """``classification``, ``tool_calling`` or ``generic``."""
        ...

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics this workload reports, primary (reference) key first."""
        ...

    @property
    def judge_metrics(self) -> frozenset[str]:
        """The metrics among :attr:`metrics` that an LLM judge grades (empty: no judge is ever needed)."""
        ...

    @property
    def needs_judge(self) -> bool:
        """Whether any metric is judge-graded (a given judge is used, and named in the result, only then)."""
        ...

    def no_judge_reason(self, *, tool_eval_type: str | None = None) -> str | None:
        """``None`` when this workload is scored with a judge under ``evaluation_config.tool_eval_type``, else the
        reason no judge is used (the caller adds its own reason when no judge is configured)."""
        ...

    def primary_metric(self, computed: Collection[str] = ()) -> str:
        """The headline metric a recommendation rests on, given the metrics that were ``computed``."""
        ...

    def score(
        self,
        samples: list[SampleEvidence],
        records: Sequence[Mapping[str, Any]],
        judge: Judge | None,
        *,
        no_judge_reason: str,
        n_boot: int,
        confidence: float,
        seed: int,
    ) -> Scored:
        """Fill each sample's ``scores`` (and ``skipped_reason``, ``labels``, ``judge``) and aggregate them.

        ``judge`` ``None`` → the judge metrics are reported as not computed with ``no_judge_reason``.
        """
        ...


# ----------------------------------------------------------------------------------------------------- judge


@dataclass(frozen=True)
class JudgeRule:
    """How a workload asks the judge for its judge metric.

    Args:
        scorer: The judge's prompt template and reply parser; ``scorer.metric`` is the metric filled.
        decide: The grade of a sample the judge's own rules settle without asking it (``None``: ask the judge).
            Such samples cost no call and their transcript says ``decided_without_judge``.
        item: What the judge is shown for a sample, from the sample and its eval record.
    """

    scorer: Scorer
    decide: Callable[[SampleEvidence], Grade | None]
    item: Callable[[SampleEvidence, Mapping[str, Any]], JudgeItem]

    @property
    def metric(self) -> str:
        """The metric key this rule fills."""
        return self.scorer.metric


def grade_with_judge(
    judge: Judge,
    rule: JudgeRule,
    samples: Sequence[SampleEvidence],
    records: Sequence[Mapping[str, Any]],
) -> None:
    """Set ``rule.metric`` on every scored sample and keep the transcript with it.

    Samples ``rule.decide`` settles get that grade; the others go to the judge in one batch, in order. A judge that
    could not grade a sample leaves the score ``None`` (a no grade, explained in the transcript).
    """
    metric = rule.metric
    to_judge: list[tuple[SampleEvidence, JudgeItem]] = []
    for sample, record in zip(samples, records, strict=True):
        if sample.skipped_reason is not None:
            continue
        decided = rule.decide(sample)
        if decided is None:
            to_judge.append((sample, rule.item(sample, record)))
            continue
        sample.scores[metric] = decided.score
        sample.judge.append(
            JudgeTranscript(
                metric,
                None,
                None,
                decided.score,
                decided.raw_grade,
                decided.explanation,
                judge.model_name,
                decided_without_judge=True,
            )
        )
    if not to_judge:
        return
    transcripts = judge.grade(rule.scorer, [item for _, item in to_judge])
    for (sample, _), transcript in zip(to_judge, transcripts, strict=True):
        sample.judge.append(transcript)
        sample.scores[metric] = transcript.score


# ----------------------------------------------------------------------------------------------------- aggregates


def _mean_metric(
    name: str, samples: Sequence[SampleEvidence], *, n_boot: int, confidence: float, seed: int
) -> MetricResult:
    values = [s.scores[name] for s in samples if s.skipped_reason is None and s.scores.get(name) is not None]
    if not values:
        return MetricResult.not_computed(name, "no sample could be scored", confidence)
    interval = bootstrap_mean(
        [float(v) for v in values if v is not None], n_boot=n_boot, confidence=confidence, seed=seed
    )
    return MetricResult.from_interval(name, interval, confidence)


def _judge_metric(
    name: str,
    samples: Sequence[SampleEvidence],
    judge: Judge | None,
    no_judge_reason: str,
    *,
    n_boot: int,
    confidence: float,
    seed: int,
) -> MetricResult:
    if judge is None:
        return MetricResult.not_computed(name, no_judge_reason, confidence)
    scored = [s for s in samples if s.skipped_reason is None]
    no_grade = sum(1 for s in scored if s.scores.get(name) is None)
    result = _mean_metric(name, scored, n_boot=n_boot, confidence=confidence, seed=seed)
    if result.status == "not_computed" and scored:
        reasons = sorted(
            {
                t.explanation or "no grade"
                for s in scored
                for t in s.judge
                if t.metric == name and not t.graded
            }
        )
        result.reason = f"the judge gave no usable grade for any of {len(scored)} samples: " + "; ".join(
            reasons[:3]
        )
    result.no_grade = no_grade
    return result


def _per_sample_metrics(
    scorer: WorkloadScorer,
    rule: JudgeRule,
    samples: list[SampleEvidence],
    records: Sequence[Mapping[str, Any]],
    judge: Judge | None,
    *,
    no_judge_reason: str,
    n_boot: int,
    confidence: float,
    seed: int,
) -> dict[str, MetricResult]:
    """Grade ``rule.metric`` with the judge (when there is one), then aggregate every metric as a mean."""
    if judge is not None:
        grade_with_judge(judge, rule, samples, records)
    boot: dict[str, Any] = {"n_boot": n_boot, "confidence": confidence, "seed": seed}
    return {
        name: _judge_metric(name, samples, judge, no_judge_reason, **boot)
        if name in scorer.judge_metrics
        else _mean_metric(name, samples, **boot)
        for name in scorer.metrics
    }


# ----------------------------------------------------------------------------------------------------- workloads


class ClassificationScorer:
    """Macro-F1 over the teacher's label set (``f1_score``), ``accuracy`` and ``f1_weighted``; never a judge."""

    workload_type = "classification"
    metrics: tuple[str, ...] = ("f1_score", "accuracy", "f1_weighted")
    judge_metrics: frozenset[str] = frozenset()
    needs_judge = False

    def no_judge_reason(self, *, tool_eval_type: str | None = None) -> str | None:
        """Always a reason: labels are compared exactly."""
        return "classification is scored without a judge"

    def primary_metric(self, computed: Collection[str] = ()) -> str:
        """``f1_score``."""
        return "f1_score"

    def score(
        self,
        samples: list[SampleEvidence],
        records: Sequence[Mapping[str, Any]],
        judge: Judge | None,
        *,
        no_judge_reason: str,
        n_boot: int,
        confidence: float,
        seed: int,
    ) -> Scored:
        """Labels of both answers per sample (a sample whose teacher has none is skipped); F1 is corpus-level,
        so its interval recomputes it on each resample."""
        for s in samples:
            teacher_label = extract_label(s.teacher.content)
            candidate_label = extract_label(s.candidate.content)
            s.labels = {"teacher": teacher_label, "candidate": candidate_label}
            if teacher_label is None:
                s.skipped_reason = "the teacher's answer has no label"
                continue
            s.scores["accuracy"] = 1.0 if candidate_label == teacher_label else 0.0
        scored = [s for s in samples if s.skipped_reason is None]
        teacher = [s.labels["teacher"] for s in scored if s.labels and s.labels["teacher"] is not None]
        candidate = [s.labels["candidate"] if s.labels else None for s in scored]
        report = classification_report(teacher, candidate)
        if not scored:
            reason = "no eval record has a teacher label"
            return {m: MetricResult.not_computed(m, reason, confidence) for m in self.metrics}, report
        boot: dict[str, Any] = {"n_boot": n_boot, "confidence": confidence, "seed": seed}
        metrics = {
            name: _labels_metric(name, teacher, candidate, **boot)
            if name in LABEL_STATISTICS
            else _mean_metric(name, scored, **boot)
            for name in self.metrics
        }
        return metrics, report


def _labels_metric(
    name: str,
    teacher: Sequence[str],
    candidate: Sequence[str | None],
    *,
    n_boot: int,
    confidence: float,
    seed: int,
) -> MetricResult:
    labels, y_true, y_pred = encode_labels(teacher, candidate)
    k = len(labels)
    fn = LABEL_STATISTICS[name]
    interval = bootstrap(
        lambda idx: fn(y_true[idx], y_pred[idx], k),
        len(teacher),
        n_boot=n_boot,
        confidence=confidence,
        seed=seed,
    )
    return MetricResult.from_interval(name, interval, confidence)


def _decide_tool_calls(sample: SampleEvidence) -> Grade | None:
    # The judge's rules settle these without asking it (saves calls; recorded as such in the transcript).
    # Runs after ToolCallingScorer.score has set the judge-free scores it reads.
    if not normalize_calls(sample.candidate.tool_calls):
        if not normalize_calls(sample.teacher.tool_calls):
            return Grade(1.0, 1.0, "neither answer calls a tool")
        return Grade(0.0, 0.0, "the candidate made no tool call")
    if sample.scores["function_name_and_args_accuracy"] == 1.0:
        return Grade(1.0, 1.0, "the calls are identical after JSON normalisation")
    return None


def _tool_calls_item(sample: SampleEvidence, record: Mapping[str, Any]) -> JudgeItem:
    request = record.get("request") if isinstance(record.get("request"), Mapping) else {}
    assert isinstance(request, Mapping)
    tools = request.get("tools") if isinstance(request.get("tools"), list) else None
    return JudgeItem(prompt_messages(record), sample.teacher, sample.candidate, tools)


class ToolCallingScorer:
    """Judge-free call matching (``function_name``, ``function_name_and_args_accuracy``, ``function_args_f1``)
    plus the judge's 0/1 ``tool_calling_correctness`` when a judge is given (a job gives one unless
    ``evaluation_config.tool_eval_type`` is ``tool-calling-metric``, see :meth:`no_judge_reason`)."""

    workload_type = "tool_calling"
    metrics: tuple[str, ...] = (
        "function_name",
        "function_name_and_args_accuracy",
        "function_args_f1",
        "tool_calling_correctness",
    )
    judge_rule = JudgeRule(ToolCallCorrectnessScorer(), _decide_tool_calls, _tool_calls_item)
    judge_metrics: frozenset[str] = frozenset({judge_rule.metric})
    needs_judge = True

    def no_judge_reason(self, *, tool_eval_type: str | None = None) -> str | None:
        """A reason only when ``evaluation_config.tool_eval_type`` asks for the metrics alone."""
        if tool_eval_type == "tool-calling-metric":
            return "evaluation_config.tool_eval_type is tool-calling-metric"
        return None

    def primary_metric(self, computed: Collection[str] = ()) -> str:
        """``function_name_and_args_accuracy`` (exact match of the calls, judge-free)."""
        return "function_name_and_args_accuracy"

    def score(
        self,
        samples: list[SampleEvidence],
        records: Sequence[Mapping[str, Any]],
        judge: Judge | None,
        *,
        no_judge_reason: str,
        n_boot: int,
        confidence: float,
        seed: int,
    ) -> Scored:
        """Call matching per sample, then the judge's correctness; no sample is skipped."""
        for s in samples:
            teacher = normalize_calls(s.teacher.tool_calls)
            candidate = normalize_calls(s.candidate.tool_calls)
            s.scores["function_name"] = function_name_match(teacher, candidate)
            s.scores["function_name_and_args_accuracy"] = calls_exact_match(teacher, candidate)
            s.scores["function_args_f1"] = arguments_f1(teacher, candidate)
        metrics = _per_sample_metrics(
            self,
            self.judge_rule,
            samples,
            records,
            judge,
            no_judge_reason=no_judge_reason,
            n_boot=n_boot,
            confidence=confidence,
            seed=seed,
        )
        return metrics, None


def _decide_text(sample: SampleEvidence) -> Grade | None:
    if not (sample.candidate.content or "").strip():
        # The rubric's bottom grade: "1 = irrelevant or empty"; no need to ask.
        return Grade(0.1, 1.0, "the candidate answer is empty")
    return None


def _text_item(sample: SampleEvidence, record: Mapping[str, Any]) -> JudgeItem:
    return JudgeItem(prompt_messages(record), sample.teacher, sample.candidate)


class GenericScorer:
    """The judge's ``similarity`` (rating 1–10 divided by 10) plus judge-free ``rouge_l`` and ``token_f1``."""

    workload_type = "generic"
    metrics: tuple[str, ...] = ("similarity", "rouge_l", "token_f1")
    judge_rule = JudgeRule(SimilarityScorer(), _decide_text, _text_item)
    judge_metrics: frozenset[str] = frozenset({judge_rule.metric})
    needs_judge = True

    def no_judge_reason(self, *, tool_eval_type: str | None = None) -> str | None:
        """Never a reason: free text is graded by the judge whenever one is configured."""
        return None

    def primary_metric(self, computed: Collection[str] = ()) -> str:
        """``similarity`` when a judge graded it; else ``rouge_l`` when that was computed; else ``similarity``."""
        for name in ("similarity", "rouge_l"):
            if name in computed:
                return name
        return "similarity"

    def score(
        self,
        samples: list[SampleEvidence],
        records: Sequence[Mapping[str, Any]],
        judge: Judge | None,
        *,
        no_judge_reason: str,
        n_boot: int,
        confidence: float,
        seed: int,
    ) -> Scored:
        """Text overlap per sample (a sample whose teacher answer is empty is skipped), then the judge's rating."""
        for s in samples:
            if not (s.teacher.content or "").strip():
                s.skipped_reason = "the teacher's answer is empty"
                continue
            s.scores["rouge_l"] = rouge_l(s.teacher.content, s.candidate.content)
            s.scores["token_f1"] = token_f1(s.teacher.content, s.candidate.content)
        metrics = _per_sample_metrics(
            self,
            self.judge_rule,
            samples,
            records,
            judge,
            no_judge_reason=no_judge_reason,
            n_boot=n_boot,
            confidence=confidence,
            seed=seed,
        )
        return metrics, None


# ----------------------------------------------------------------------------------------------------- lookup

#: The scorer of each workload type, in the order workload types are listed to users.
SCORERS: Mapping[str, WorkloadScorer] = {
    s.workload_type: s for s in (ClassificationScorer(), ToolCallingScorer(), GenericScorer())
}
WORKLOAD_TYPES: tuple[str, ...] = tuple(SCORERS)
#: The metrics each workload reports, primary (reference) key first.
METRICS: dict[str, tuple[str, ...]] = {name: s.metrics for name, s in SCORERS.items()}
#: Metrics that need an LLM judge.
JUDGE_METRICS: frozenset[str] = frozenset().union(*(s.judge_metrics for s in SCORERS.values()))


def scorer_for(workload_type: str) -> WorkloadScorer:
    """The scorer of ``workload_type`` (``classification``, ``tool_calling`` or ``generic``).

    Raises:
        DataError: an unknown workload type (``auto`` included: decide it first, e.g. with
            :func:`~flywheel.pipeline.evaluate.detect_workload_type`).
    """
    scorer = SCORERS.get(workload_type)
    if scorer is None:
        raise DataError(
            f"Unknown workload type {workload_type!r}; use one of {', '.join(WORKLOAD_TYPES)} "
            "(decide 'auto' from the records first)."
        )
    return scorer
