"""The job in the reference's shapes (``JobResponse`` in lists, ``JobDetailResponse``), from the repository's rows.

Pure functions of rows already read; the repository does the reading. flywheel's additions (n, intervals, usage,
dataset stats, steps) sit beside the reference's keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypedDict

from flywheel.pipeline.datasets import DatasetStats
from flywheel.pipeline.report import CandidateDetail, CustomizationDetail, EvaluationDetail, JobDetail
from flywheel.service.jobs._rows import JobRow, loads


def iso(ts: float | None) -> str | None:
    """Naive-UTC ISO-8601 without ``Z``, as the reference serialises datetimes."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None).isoformat()


class _Head(TypedDict):
    id: str
    workload_id: str
    client_id: str
    status: str
    started_at: str | None
    finished_at: str | None


def _head(row: JobRow) -> _Head:
    """The fields the list and the detail share."""
    return {
        "id": row.id,
        "workload_id": row.workload_id,
        "client_id": row.client_id,
        "status": row.status,
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
    }


def list_item(row: JobRow) -> dict[str, Any]:
    """A job in the reference's list shape (``GET /api/jobs`` items)."""
    return {**_head(row), "datasets": row.datasets, "error": row.error}


def job_detail(
    row: JobRow, cands: Sequence[Any], evals: Sequence[Any], customs: Sequence[Any], steps: Sequence[Any]
) -> JobDetail:
    """The job in the reference's ``JobDetailResponse`` shape, extended with n / intervals / usage."""
    config = row.config
    nims: list[CandidateDetail] = []
    for cand in cands:
        nims.append(
            {
                "model_name": cand.model_name,
                "status": cand.status,
                "deployment_status": cand.deployment_status,
                "runtime_seconds": cand.runtime_seconds,
                "error": cand.error,
                "evaluations": [_evaluation(e) for e in evals if e.candidate_id == cand.id],
                "customizations": [_customization(c) for c in customs if c.candidate_id == cand.id],
            }
        )
    judge = config.get("llm_judge_config")
    return {
        **_head(row),
        "num_records": row.num_records,
        "error": row.error,
        "llm_judge": None
        if not judge
        else {
            "model_name": judge.get("model_name"),
            "type": judge.get("deployment_type"),
            "deployment_status": "ready",
            "error": None,
        },
        "datasets": row.datasets,
        "nims": nims,
        # flywheel's additions
        "workload_type": (row.manifest or {}).get("workload_type"),
        "dataset_stats": dataset_stats(row.manifest),
        "steps": [
            {
                "name": s.name,
                "kind": s.kind,
                "status": s.status,
                "progress": s.progress,
                "attempts": s.attempts,
                "started_at": iso(s.started_at),
                "finished_at": iso(s.finished_at),
                "error": s.error,
            }
            for s in steps
        ],
    }


def dataset_stats(manifest: dict[str, Any] | None) -> DatasetStats | None:
    """Counts at each curation step, rejection reasons and class distribution per split, from the manifest."""
    if not manifest:
        return None
    return {
        "workload_type": manifest.get("workload_type"),
        "workload_evidence": manifest.get("workload_evidence"),
        "counts": manifest.get("steps", {}),
        "rejected": manifest.get("rejected", {}),
        "splits": {name: manifest[name] for name in ("eval", "train", "val") if name in manifest},
        "split_decisions": (manifest.get("split") or {}).get("decisions", []),
        "leakage": manifest.get("leakage"),
        "pii": manifest.get("pii"),
        "icl": manifest.get("icl"),
    }


def _evaluation(e: Any) -> EvaluationDetail:
    result = loads(e.result, {}) or {}
    return {
        "eval_type": e.eval_type,
        "scores": loads(e.scores, {}),
        "started_at": iso(e.started_at),
        "finished_at": iso(e.finished_at),
        "runtime_seconds": e.runtime_seconds,
        "progress": e.progress,
        "nmp_uri": e.nmp_uri,
        "mlflow_uri": e.mlflow_uri,
        "error": e.error,
        # flywheel's additions: n, confidence intervals, usage, not-computed metrics
        "status": e.status,
        "metrics": result.get("metrics", {}),
        "usage": result.get("usage", {}),
        "throughput": result.get("throughput"),
        "n": result.get("n_scored"),
    }


def _customization(c: Any) -> CustomizationDetail:
    return {
        "started_at": iso(c.started_at),
        "finished_at": iso(c.finished_at),
        "runtime_seconds": c.runtime_seconds,
        "progress": c.progress,
        "epochs_completed": c.epochs_completed,
        "steps_completed": c.steps_completed,
        "nmp_uri": c.nmp_uri,
        "customized_model": c.customized_model,
        "error": c.error,
        "status": c.status,
        "metrics": loads(c.metrics, {}),
    }
