"""Durable job state in the store: creating jobs, reading them in the reference's shape, status transitions.

Status rules (the reference's, plus its fixes):

* job: ``pending → running → completed | failed | cancelled``. The first terminal write wins: once a job has
  ``finished_at`` set, nothing changes its status again (a cancelled job is never flipped to completed).
* a job in which no evaluation succeeded ends ``failed`` with the reasons, never ``completed``.
* candidate (the reference's "nim"): ``pending → running-evals → completed | failed | cancelled``.
* evaluation / customization: ``pending → running → completed | failed | cancelled``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine, and_, delete, func, insert, select, update

from flywheel.errors import ConflictError, NotFoundError
from flywheel.ids import new_id
from flywheel.store import customizations, evaluation_samples, evaluations, job_candidates, job_steps, jobs

TERMINAL = frozenset({"completed", "failed", "cancelled"})
ACTIVE = frozenset({"pending", "running"})


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _loads(text: str | None, default: Any = None) -> Any:
    return orjson.loads(text) if text else default


def iso(ts: float | None) -> str | None:
    """Naive-UTC ISO-8601 without ``Z``, as the reference serialises datetimes."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None).isoformat()


class JobRepository:
    """Reads and writes one store's jobs. Every method is a short transaction; safe to share across threads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------------------------------------- creation

    def create_job(
        self,
        workload_id: str,
        client_id: str,
        *,
        request: dict[str, Any],
        config: dict[str, Any],
        candidates: Sequence[str],
    ) -> str:
        """Insert a pending job with one pending row per candidate; return the job id."""
        now = time.time()
        job_id = new_id(now)
        with self.engine.begin() as conn:
            conn.execute(
                insert(jobs).values(
                    id=job_id,
                    workload_id=workload_id,
                    client_id=client_id,
                    status="pending",
                    created_at=now,
                    started_at=now,
                    updated_at=now,
                    num_records=0,
                    request=_dumps(request),
                    config=_dumps(config),
                    datasets="[]",
                    cancel_requested=0,
                )
            )
            for position, name in enumerate(candidates):
                conn.execute(
                    insert(job_candidates).values(
                        id=new_id(now),
                        job_id=job_id,
                        position=position,
                        model_name=name,
                        status="pending",
                        deployment_status="pending",
                        runtime_seconds=0.0,
                    )
                )
        return job_id

    # ------------------------------------------------------------------------------------------- reading

    def get_row(self, job_id: str) -> Any:
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise NotFoundError(f"Job with ID {job_id} not found")
        return row

    def job_config(self, job_id: str) -> dict[str, Any]:
        return dict(_loads(self.get_row(job_id).config, {}))

    def candidates(self, job_id: str) -> list[Any]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(job_candidates)
                    .where(job_candidates.c.job_id == job_id)
                    .order_by(job_candidates.c.position)
                )
            )

    def list_jobs(
        self,
        *,
        workload_id: str | None = None,
        client_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """Jobs newest first, filtered; returns (page, total matching)."""
        conditions = []
        if workload_id is not None:
            conditions.append(jobs.c.workload_id == workload_id)
        if client_id is not None:
            conditions.append(jobs.c.client_id == client_id)
        if status is not None:
            conditions.append(jobs.c.status == status)
        where = and_(*conditions) if conditions else None
        query = select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit).offset(offset)
        count = select(func.count()).select_from(jobs)
        if where is not None:
            query = query.where(where)
            count = count.where(where)
        with self.engine.connect() as conn:
            rows = list(conn.execute(query))
            total = int(conn.scalar(count) or 0)
        return [self._list_item(r) for r in rows], total

    @staticmethod
    def _list_item(row: Any) -> dict[str, Any]:
        return {
            "id": row.id,
            "workload_id": row.workload_id,
            "client_id": row.client_id,
            "status": row.status,
            "started_at": iso(row.started_at),
            "finished_at": iso(row.finished_at),
            "datasets": _loads(row.datasets, []),
            "error": row.error,
        }

    def detail(self, job_id: str) -> dict[str, Any]:
        """The job in the reference's ``JobDetailResponse`` shape, extended with n / intervals / usage."""
        row = self.get_row(job_id)
        with self.engine.connect() as conn:
            cands = list(
                conn.execute(
                    select(job_candidates)
                    .where(job_candidates.c.job_id == job_id)
                    .order_by(job_candidates.c.position)
                )
            )
            evals = list(
                conn.execute(
                    select(evaluations)
                    .where(evaluations.c.job_id == job_id)
                    .order_by(evaluations.c.started_at, evaluations.c.id)
                )
            )
            customs = list(
                conn.execute(
                    select(customizations)
                    .where(customizations.c.job_id == job_id)
                    .order_by(customizations.c.started_at, customizations.c.id)
                )
            )
            steps = list(
                conn.execute(
                    select(job_steps).where(job_steps.c.job_id == job_id).order_by(job_steps.c.position)
                )
            )
        config = _loads(row.config, {})
        nims = []
        for cand in cands:
            nims.append(
                {
                    "model_name": cand.model_name,
                    "status": cand.status,
                    "deployment_status": cand.deployment_status,
                    "runtime_seconds": cand.runtime_seconds,
                    "error": cand.error,
                    "evaluations": [self._evaluation(e) for e in evals if e.candidate_id == cand.id],
                    "customizations": [self._customization(c) for c in customs if c.candidate_id == cand.id],
                }
            )
        judge = config.get("llm_judge_config")
        return {
            "id": row.id,
            "workload_id": row.workload_id,
            "client_id": row.client_id,
            "status": row.status,
            "started_at": iso(row.started_at),
            "finished_at": iso(row.finished_at),
            "num_records": row.num_records or 0,
            "error": row.error,
            "llm_judge": None
            if not judge
            else {
                "model_name": judge.get("model_name"),
                "type": judge.get("deployment_type"),
                "deployment_status": "ready",
                "error": None,
            },
            "datasets": _loads(row.datasets, []),
            "nims": nims,
            # flywheel's additions
            "workload_type": (_loads(row.manifest, {}) or {}).get("workload_type"),
            "dataset_stats": self._dataset_stats(_loads(row.manifest, None)),
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

    @staticmethod
    def _dataset_stats(manifest: dict[str, Any] | None) -> dict[str, Any] | None:
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

    @staticmethod
    def _evaluation(e: Any) -> dict[str, Any]:
        result = _loads(e.result, {}) or {}
        return {
            "eval_type": e.eval_type,
            "scores": _loads(e.scores, {}),
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

    @staticmethod
    def _customization(c: Any) -> dict[str, Any]:
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
            "metrics": _loads(c.metrics, {}),
        }

    # ------------------------------------------------------------------------------------------- transitions

    def set_job(self, job_id: str, **values: Any) -> None:
        """Update fields of a job that has not finished (terminal states are final)."""
        for key in ("datasets", "manifest"):
            if key in values and not isinstance(values[key], str) and values[key] is not None:
                values[key] = _dumps(values[key])
        values["updated_at"] = time.time()
        with self.engine.begin() as conn:
            conn.execute(
                update(jobs).where(jobs.c.id == job_id, jobs.c.finished_at.is_(None)).values(**values)
            )

    def finish_job(self, job_id: str, status: str, error: str | None = None) -> bool:
        """Move a job to a terminal status unless it already has one; True if this call did it."""
        assert status in TERMINAL
        now = time.time()
        with self.engine.begin() as conn:
            result = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.finished_at.is_(None))
                .values(status=status, error=error, finished_at=now, updated_at=now)
            )
        return bool(result.rowcount)

    def request_cancel(self, job_id: str) -> str:
        """Ask a job to stop; returns the reference's message. Raises ConflictError for a finished job."""
        row = self.get_row(job_id)
        if row.status == "cancelled":
            return "Job is already cancelled."
        if row.finished_at is not None:
            raise ConflictError("Cannot cancel a job that has already finished.")
        with self.engine.begin() as conn:
            conn.execute(
                update(jobs).where(jobs.c.id == job_id).values(cancel_requested=1, updated_at=time.time())
            )
        return "Job cancellation initiated successfully."

    def cancel_requested(self, job_id: str) -> bool:
        with self.engine.connect() as conn:
            value = conn.scalar(select(jobs.c.cancel_requested).where(jobs.c.id == job_id))
        return bool(value) if value is not None else True  # a deleted job counts as cancelled

    def delete_job(self, job_id: str) -> Any:
        """Delete a finished job's rows (cascades to its children); returns the deleted row."""
        row = self.get_row(job_id)
        if row.finished_at is None:
            raise ConflictError("Cannot delete a running job. Please cancel the job first.")
        with self.engine.begin() as conn:
            eval_ids = select(evaluations.c.id).where(evaluations.c.job_id == job_id)
            conn.execute(delete(evaluation_samples).where(evaluation_samples.c.evaluation_id.in_(eval_ids)))
            for table in (evaluations, customizations, job_steps, job_candidates):
                conn.execute(delete(table).where(table.c.job_id == job_id))
            conn.execute(delete(jobs).where(jobs.c.id == job_id))
        return row
