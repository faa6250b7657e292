"""What a job is: its steps, planned once at submission, and its settings, resolved once per job.

The configuration is frozen into the job at submission (per-job overrides applied and validated then), so a runner
validates it once per job and hands the pipeline plain arguments built from it here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel.config import FlywheelConfig, LLMJudgeConfig, NIMConfig
from flywheel.pipeline.evaluate import SCORERS
from flywheel.pipeline.experiments import EvalSettings, candidate_sequence
from flywheel.service.jobs._rows import JobRow, StepKind, StepSpec

#: ``datasets[].name`` of the job detail is ``flywheel-{kind}-{workload_id}-{created}``; artifact → kind.
_DATASET_KINDS = {"eval": "eval", "icl_eval": "icl", "train": "train", "val": "val"}


def job_dir(home: Path, job_id: str) -> Path:
    """Where a job's datasets and adapters live."""
    return Path(home) / "jobs" / job_id


def plan_steps(config: FlywheelConfig, candidates: list[str]) -> list[StepSpec]:
    """The steps of a job, in the order they run: datasets, each candidate's sequence, finalize."""
    by_name = {n.model_name: n for n in config.nims}
    steps = [StepSpec(StepKind.DATASETS)]
    for name in candidates:
        for experiment in candidate_sequence(customize=by_name[name].customization_enabled):
            steps.append(StepSpec(StepKind(experiment.value), name))
    steps.append(StepSpec(StepKind.FINALIZE))
    return steps


@dataclass(frozen=True)
class JobSettings:
    """A job's identity and validated configuration, as its steps use them."""

    id: str
    workload_id: str
    client_id: str
    created_at: float
    request: Mapping[str, Any]
    config: FlywheelConfig

    @classmethod
    def from_row(cls, row: JobRow) -> JobSettings:
        config = FlywheelConfig.model_validate(row.config)
        return cls(row.id, row.workload_id, row.client_id, row.created_at, row.request, config)

    def nim(self, candidate: str | None) -> NIMConfig:
        """The configuration of candidate ``candidate``."""
        return next(n for n in self.config.nims if n.model_name == candidate)

    def eval_settings(self, workload_type: str | None) -> EvalSettings:
        """How candidates are evaluated; ``workload_type`` is the detected one (else the configured one)."""
        evaluation = self.config.evaluation_config
        return EvalSettings(
            workload_type=workload_type or evaluation.workload_type,
            max_tokens=evaluation.max_new_tokens,
            limit=evaluation.limit,
            bootstrap_samples=evaluation.bootstrap_samples,
            confidence=evaluation.confidence,
            seed=self.config.data_split_config.random_seed or 0,
        )

    def dataset_options(self) -> dict[str, Any]:
        """``build_datasets`` keyword arguments: the job's data settings (per-job overrides were resolved and
        validated into its configuration at submission) and its time window."""
        config = self.config
        return {
            "split": config.data_split_config,
            "icl": config.icl_config,
            "evaluation": config.evaluation_config,
            "curation": config.curation,
            "workers": config.curation.workers,
            "since": self.request.get("since"),
            "until": self.request.get("until"),
        }

    def judge_plan(self, workload_type: str) -> tuple[LLMJudgeConfig | None, str]:
        """The judge to build for an evaluation of ``workload_type`` — or none, with the reason. The workload's
        scorer decides whether it needs one (a type still ``auto`` is decided per metric, so a judge is offered)."""
        scorer = SCORERS.get(workload_type)
        reason = (
            scorer.no_judge_reason(tool_eval_type=self.config.evaluation_config.tool_eval_type)
            if scorer
            else None
        )
        if reason is not None:
            return None, reason
        if self.config.llm_judge_config is None:
            return None, "no LLM judge configured (llm_judge_config is null)"
        return self.config.llm_judge_config, ""

    def dataset_entries(self, manifest: Mapping[str, Any], paths: Mapping[str, Path]) -> list[dict[str, Any]]:
        """The job detail's ``datasets`` (the reference's names) for a dataset build."""
        return [
            {
                "name": f"flywheel-{kind}-{self.workload_id}-{int(self.created_at)}",
                "num_records": int(manifest["artifacts"][key]["records"]),
                "nmp_uri": None,
                "path": str(paths[key]),
            }
            for key, kind in _DATASET_KINDS.items()
            if key in manifest["artifacts"]
        ]
