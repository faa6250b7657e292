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
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import orjson
from sqlalchemy import Engine, and_, delete, func, insert, select, update

from flywheel.errors import ConflictError, NotFoundError
from flywheel.ids import new_id
from flywheel.pipeline.records import RecordView
from flywheel.pipeline.report import JobDetail
from flywheel.service.jobs._detail import job_detail, list_item
from flywheel.service.jobs._rows import (
    STEP_ENDED,
    TERMINAL,
    JobRow,
    StepKind,
    StepRow,
    StepSpec,
    job_row,
    step_row,
)
from flywheel.service.jobs._rows import dumps as _dumps
from flywheel.service.jobs._rows import loads as _loads
from flywheel.store import (
    customizations,
    evaluation_samples,
    evaluations,
    job_candidates,
    job_steps,
    jobs,
    log_records,
)


def _live_lease(now: float) -> tuple[Any, ...]:
    """A step a live worker holds: running, under a lease that has not expired."""
    return (job_steps.c.status == "running", job_steps.c.lease_expires_at > now)


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
        steps: Sequence[StepSpec] = (),
    ) -> str:
        """Insert a pending job with one pending row per candidate and per planned step; return the job id."""
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
            candidate_ids = {}
            for position, name in enumerate(candidates):
                candidate_ids[name] = new_id(now)
                conn.execute(
                    insert(job_candidates).values(
                        id=candidate_ids[name],
                        job_id=job_id,
                        position=position,
                        model_name=name,
                        status="pending",
                        deployment_status="pending",
                        runtime_seconds=0.0,
                    )
                )
            for position, spec in enumerate(steps):
                conn.execute(
                    insert(job_steps).values(
                        id=new_id(),
                        job_id=job_id,
                        position=position,
                        name=spec.name,
                        kind=spec.kind.value,
                        candidate_id=candidate_ids[spec.candidate] if spec.candidate else None,
                        status="pending",
                        progress=0.0,
                        attempts=0,
                    )
                )
        return job_id

    # ------------------------------------------------------------------------------------------- reading

    def job(self, job_id: str) -> JobRow:
        """The job's row; NotFoundError (the reference's message) for an unknown id."""
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise NotFoundError(f"Job with ID {job_id} not found")
        return job_row(row)

    def job_config(self, job_id: str) -> dict[str, Any]:
        """The effective configuration the job runs with (JSON)."""
        return self.job(job_id).config

    def list_jobs(
        self,
        *,
        workload_id: str | None = None,
        client_id: str | None = None,
        status: str | None = None,
        order: Literal["asc", "desc"] = "asc",
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """Jobs filtered, oldest first (the reference's order) or newest first with ``order="desc"``; returns
        (page, total matching)."""
        conditions = []
        if workload_id is not None:
            conditions.append(jobs.c.workload_id == workload_id)
        if client_id is not None:
            conditions.append(jobs.c.client_id == client_id)
        if status is not None:
            conditions.append(jobs.c.status == status)
        where = and_(*conditions) if conditions else None
        by = (
            (jobs.c.created_at.desc(), jobs.c.id.desc())
            if order == "desc"
            else (jobs.c.created_at, jobs.c.id)
        )
        query = select(jobs).order_by(*by).limit(limit).offset(offset)
        count = select(func.count()).select_from(jobs)
        if where is not None:
            query = query.where(where)
            count = count.where(where)
        with self.engine.connect() as conn:
            rows = list(conn.execute(query))
            total = int(conn.scalar(count) or 0)
        return [list_item(job_row(r)) for r in rows], total

    def detail(self, job_id: str) -> JobDetail:
        """The job in the reference's ``JobDetailResponse`` shape, extended with n / intervals / usage."""
        row = self.job(job_id)
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
        return job_detail(row, cands, evals, customs, steps)

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
        """Ask a job to stop; returns the reference's message. Raises ConflictError for a finished job.

        A job no live worker holds (queued, between two steps, or orphaned by a dead process) is ended
        ``cancelled`` at once; a running step stops at its next check and its worker ends the job."""
        row = self.job(job_id)
        if row.status == "cancelled":
            return "Job is already cancelled."
        if row.finished_at is not None:
            raise ConflictError("Cannot cancel a job that has already finished.")
        with self.engine.begin() as conn:
            conn.execute(
                update(jobs).where(jobs.c.id == job_id).values(cancel_requested=1, updated_at=time.time())
            )
        if not self.held(job_id):
            # No live worker holds a step, so none would act on the request: finish the cancel here. A worker
            # that picks the job up later finds it finished; one between two steps stops at its next check.
            self.end_job(job_id, "cancelled", "Job cancelled by user.")
        return "Job cancellation initiated successfully."

    def cancel_requested(self, job_id: str) -> bool:
        with self.engine.connect() as conn:
            value = conn.scalar(select(jobs.c.cancel_requested).where(jobs.c.id == job_id))
        return bool(value) if value is not None else True  # a deleted job counts as cancelled

    def delete_job(self, job_id: str) -> JobRow:
        """Delete a finished job's rows (cascades to its children); returns the deleted row."""
        row = self.job(job_id)
        if row.finished_at is None:
            raise ConflictError("Cannot delete a running job. Please cancel the job first.")
        with self.engine.begin() as conn:
            eval_ids = select(evaluations.c.id).where(evaluations.c.job_id == job_id)
            conn.execute(delete(evaluation_samples).where(evaluation_samples.c.evaluation_id.in_(eval_ids)))
            for table in (evaluations, customizations, job_steps, job_candidates):
                conn.execute(delete(table).where(table.c.job_id == job_id))
            conn.execute(delete(jobs).where(jobs.c.id == job_id))
        return row

    def end_job(self, job_id: str, status: str, reason: str, job_error: str | None = None) -> None:
        """End every unfinished step, evaluation, customization and candidate with ``status`` and ``reason``,
        then the job itself (with ``job_error``, default ``reason``)."""
        now = time.time()
        with self.engine.begin() as conn:
            for table in (job_steps, evaluations, customizations):
                conn.execute(
                    update(table)
                    .where(table.c.job_id == job_id, table.c.status.in_(("pending", "running")))
                    .values(status=status, error=reason, finished_at=now)
                )
            conn.execute(
                update(job_candidates)
                .where(job_candidates.c.job_id == job_id, job_candidates.c.finished_at.is_(None))
                .values(status=status, error=reason, finished_at=now)
            )
        self.finish_job(job_id, status, job_error or reason)

    def resumable_jobs(self, now: float) -> list[str]:
        """Unfinished jobs, oldest first, that no live worker holds (no running step with an unexpired lease)."""
        with self.engine.connect() as conn:
            unfinished = list(
                conn.scalars(
                    select(jobs.c.id).where(jobs.c.finished_at.is_(None)).order_by(jobs.c.created_at)
                )
            )
            held = set(conn.scalars(select(job_steps.c.job_id).where(*_live_lease(now))))
        return [job_id for job_id in unfinished if job_id not in held]

    def idle_jobs(self, now: float, idle_s: float) -> list[str]:
        """Unfinished jobs with no running step and no activity (job or step writes) for ``idle_s`` seconds — work
        whose next message was lost (a broker restart) or never sent (the broker was down)."""
        with self.engine.connect() as conn:
            unfinished = {
                r.id: r.updated_at or 0.0
                for r in conn.execute(
                    select(jobs.c.id, jobs.c.updated_at).where(jobs.c.finished_at.is_(None))
                )
            }
            if not unfinished:
                return []
            steps = list(
                conn.execute(
                    select(
                        job_steps.c.job_id,
                        job_steps.c.status,
                        job_steps.c.started_at,
                        job_steps.c.finished_at,
                    ).where(job_steps.c.job_id.in_(list(unfinished)))
                )
            )
        last = dict(unfinished)
        busy = set()
        for step in steps:
            if step.status == "running":
                busy.add(step.job_id)
            last[step.job_id] = max(last[step.job_id], step.started_at or 0.0, step.finished_at or 0.0)
        return [job_id for job_id, at in last.items() if job_id not in busy and at < now - idle_s]

    # ------------------------------------------------------------------------------------------- steps

    def steps(self, job_id: str, *, candidate_id: str | None = None) -> list[StepRow]:
        """The job's steps in plan order (only one candidate's with ``candidate_id``)."""
        conditions = [job_steps.c.job_id == job_id]
        if candidate_id is not None:
            conditions.append(job_steps.c.candidate_id == candidate_id)
        return self._step_rows(conditions, order_by=job_steps.c.position)

    def _step_rows(self, conditions: Sequence[Any], *, order_by: Any = None) -> list[StepRow]:
        """Steps matching ``conditions``, each with its candidate's model name (``jobs`` is joined in)."""
        query = (
            select(job_steps, job_candidates.c.model_name)
            .select_from(
                job_steps.join(jobs, jobs.c.id == job_steps.c.job_id).outerjoin(
                    job_candidates, job_candidates.c.id == job_steps.c.candidate_id
                )
            )
            .where(*conditions)
        )
        if order_by is not None:
            query = query.order_by(order_by)
        with self.engine.connect() as conn:
            return [step_row(r, r.model_name) for r in conn.execute(query)]

    def next_step(self, job_id: str) -> StepRow | None:
        """The first step of the job that has not ended (``finalize`` is the last one), or None."""
        return next((s for s in self.steps(job_id) if s.status not in STEP_ENDED), None)

    def step_result(self, job_id: str, kind: StepKind, candidate: str | None = None) -> dict[str, Any] | None:
        """What a completed step produced (None if it has not completed)."""
        for step in self.steps(job_id):
            if step.kind is kind and step.candidate == candidate:
                return step.result if step.status == "completed" else None
        return None

    def claim_step(self, step: StepRow, worker_id: str, lease_s: float) -> bool:
        """Take ``step`` under a lease unless another live worker holds it (atomic in the database)."""
        now = time.time()
        with self.engine.begin() as conn:
            result = conn.execute(
                update(job_steps)
                .where(
                    job_steps.c.id == step.id,
                    (job_steps.c.status == "pending")
                    | ((job_steps.c.status == "running") & (job_steps.c.lease_expires_at < now)),
                )
                .values(
                    status="running",
                    attempts=step.attempts + 1,
                    worker_id=worker_id,
                    started_at=now,
                    finished_at=None,
                    error=None,
                    progress=0.0,
                    lease_expires_at=now + lease_s,
                )
            )
        return bool(result.rowcount)

    def renew_lease(self, step_id: str, worker_id: str, lease_s: float) -> None:
        """Extend the lease of a step this worker holds."""
        with self.engine.begin() as conn:
            conn.execute(
                update(job_steps)
                .where(job_steps.c.id == step_id, job_steps.c.worker_id == worker_id)
                .values(lease_expires_at=time.time() + lease_s)
            )

    def step_progress(
        self, step_id: str, pct: float, lease_s: float, *, evaluation_id: str | None = None
    ) -> None:
        """Record a running step's progress (and its evaluation's), renewing its lease."""
        with self.engine.begin() as conn:
            conn.execute(
                update(job_steps)
                .where(job_steps.c.id == step_id)
                .values(progress=pct, lease_expires_at=time.time() + lease_s)
            )
            if evaluation_id is not None:
                conn.execute(
                    update(evaluations).where(evaluations.c.id == evaluation_id).values(progress=pct)
                )

    def end_step(
        self,
        step_id: str,
        status: str,
        *,
        error: str | None = None,
        result: Mapping[str, Any] | None = None,
        started_at: float | None = None,
    ) -> None:
        """Give a step its final status; a completed or skipped one gets progress 100 and its result (what
        :meth:`note_step` recorded while it ran is kept beside it)."""
        values: dict[str, Any] = {"status": status, "finished_at": time.time(), "error": error}
        if status in ("completed", "skipped"):
            values.update(progress=100.0, lease_expires_at=None)
        if started_at is not None:
            values["started_at"] = started_at
        with self.engine.begin() as conn:
            if result is not None:
                noted = conn.scalar(select(job_steps.c.result).where(job_steps.c.id == step_id))
                values["result"] = _dumps({**(_loads(noted) if noted else {}), **result})
            conn.execute(update(job_steps).where(job_steps.c.id == step_id).values(**values))

    def note_step(self, step_id: str, **values: Any) -> None:
        """Record ``values`` in a step's result while it runs (e.g. a deployment it started, before waiting for it),
        so that a worker that resumes the job after a crash finds them; keys not named are kept."""
        with self.engine.begin() as conn:
            noted = conn.scalar(select(job_steps.c.result).where(job_steps.c.id == step_id).with_for_update())
            merged = {**(_loads(noted) if noted else {}), **values}
            conn.execute(update(job_steps).where(job_steps.c.id == step_id).values(result=_dumps(merged)))

    def fail_pending_steps(self, job_id: str, candidate_id: str, kind: StepKind, error: str) -> None:
        """Fail a candidate's pending steps of ``kind`` (what can no longer run after a failure)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(job_steps)
                .where(
                    job_steps.c.job_id == job_id,
                    job_steps.c.candidate_id == candidate_id,
                    job_steps.c.kind == kind.value,
                    job_steps.c.status == "pending",
                )
                .values(status="failed", error=error)
            )

    def stalled_steps(self, now: float) -> list[StepRow]:
        """Running steps of unfinished jobs whose lease has expired (their worker died)."""
        return self._step_rows(
            [
                jobs.c.finished_at.is_(None),
                job_steps.c.status == "running",
                job_steps.c.lease_expires_at < now,
            ]
        )

    def release_step(self, step_id: str, reason: str) -> None:
        """Put a running step back to ``pending`` with the reason and no lease (its worker died or shut down), so
        the next worker that picks the job up runs it again (a second recovery sweep skips it)."""
        with self.engine.begin() as conn:
            self._release(conn, job_steps.c.id == step_id, reason)

    def release_worker_steps(self, worker_id: str, reason: str) -> list[str]:
        """Release every step ``worker_id`` still runs (a clean shutdown); returns their job ids."""
        with self.engine.begin() as conn:
            held = list(
                conn.scalars(
                    select(job_steps.c.job_id).where(
                        job_steps.c.worker_id == worker_id, job_steps.c.status == "running"
                    )
                )
            )
            self._release(conn, job_steps.c.worker_id == worker_id, reason)
        return held

    @staticmethod
    def _release(conn: Any, which: Any, reason: str) -> None:
        conn.execute(
            update(job_steps)
            .where(which, job_steps.c.status == "running")
            .values(status="pending", error=reason, lease_expires_at=None, worker_id=None)
        )

    def held(self, job_id: str, now: float | None = None) -> bool:
        """Whether a live worker holds one of the job's steps (a running step whose lease has not expired)."""
        now = time.time() if now is None else now
        with self.engine.connect() as conn:
            found = conn.scalar(
                select(job_steps.c.id).where(job_steps.c.job_id == job_id, *_live_lease(now)).limit(1)
            )
        return found is not None

    # ------------------------------------------------------------------------------------------- candidates

    def start_candidate(self, candidate_id: str) -> None:
        """A candidate's first step started: it is ``running-evals`` (started_at is set once)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(job_candidates)
                .where(job_candidates.c.id == candidate_id, job_candidates.c.started_at.is_(None))
                .values(started_at=time.time())
            )
            conn.execute(
                update(job_candidates)
                .where(job_candidates.c.id == candidate_id, job_candidates.c.finished_at.is_(None))
                .values(status="running-evals", deployment_status="ready")
            )

    def finish_candidate(self, candidate_id: str, status: str, error: str | None) -> None:
        """End a candidate that has not ended, with its runtime since its first step."""
        now = time.time()
        with self.engine.begin() as conn:
            started = conn.scalar(
                select(job_candidates.c.started_at).where(job_candidates.c.id == candidate_id)
            )
            conn.execute(
                update(job_candidates)
                .where(job_candidates.c.id == candidate_id, job_candidates.c.finished_at.is_(None))
                .values(
                    status=status,
                    deployment_status="completed",
                    error=error,
                    finished_at=now,
                    runtime_seconds=now - (started or now),
                )
            )

    # ------------------------------------------------------------------------------------------- evaluations

    def start_evaluation(self, job_id: str, candidate_id: str, eval_type: str) -> str:
        """A new running evaluation; replaces what an interrupted attempt of the same one left behind."""
        eval_id = new_id()
        same = (
            evaluations.c.job_id == job_id,
            evaluations.c.candidate_id == candidate_id,
            evaluations.c.eval_type == eval_type,
        )
        with self.engine.begin() as conn:
            old = select(evaluations.c.id).where(*same)
            conn.execute(delete(evaluation_samples).where(evaluation_samples.c.evaluation_id.in_(old)))
            conn.execute(delete(evaluations).where(*same))
            conn.execute(
                insert(evaluations).values(
                    id=eval_id,
                    job_id=job_id,
                    candidate_id=candidate_id,
                    eval_type=eval_type,
                    status="running",
                    scores="{}",
                    started_at=time.time(),
                    runtime_seconds=0.0,
                    progress=0.0,
                )
            )
        return eval_id

    def end_evaluation(self, eval_id: str, status: str, started: float, *, error: str | None = None) -> None:
        """End an evaluation that produced no result (failed or cancelled)."""
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(
                update(evaluations)
                .where(evaluations.c.id == eval_id)
                .values(status=status, finished_at=now, runtime_seconds=now - started, error=error)
            )

    def complete_evaluation(
        self,
        eval_id: str,
        started: float,
        *,
        scores: Mapping[str, Any],
        result: Mapping[str, Any],
        samples: Sequence[tuple[Mapping[str, Any], float | None]],
    ) -> None:
        """Store a finished evaluation: reference scores, the full result, and each sample with its score."""
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(
                update(evaluations)
                .where(evaluations.c.id == eval_id)
                .values(
                    status="completed",
                    scores=_dumps(scores),
                    result=_dumps(result),
                    finished_at=now,
                    runtime_seconds=now - started,
                    progress=100.0,
                )
            )
            if samples:
                conn.execute(
                    insert(evaluation_samples),
                    [
                        {
                            "evaluation_id": eval_id,
                            "position": i,
                            "record_id": sample.get("record_id"),
                            "score": score,
                            "sample": _dumps(sample),
                        }
                        for i, (sample, score) in enumerate(samples)
                    ],
                )

    def set_evaluation_mlflow_uri(self, eval_id: str, uri: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(evaluations).where(evaluations.c.id == eval_id).values(mlflow_uri=uri))

    # ------------------------------------------------------------------------------------------- customizations

    def start_customization(self, job_id: str, candidate_id: str) -> str:
        """A new running customization; replaces what an interrupted attempt left behind."""
        custom_id = new_id()
        with self.engine.begin() as conn:
            conn.execute(
                delete(customizations).where(
                    customizations.c.job_id == job_id, customizations.c.candidate_id == candidate_id
                )
            )
            conn.execute(
                insert(customizations).values(
                    id=custom_id,
                    job_id=job_id,
                    candidate_id=candidate_id,
                    status="running",
                    started_at=time.time(),
                    runtime_seconds=0.0,
                    progress=0.0,
                    epochs_completed=0,
                    steps_completed=0,
                )
            )
        return custom_id

    def customization_progress(
        self,
        custom_id: str,
        *,
        pct: float,
        steps: int,
        epochs: int,
        runtime_s: float,
        metrics: Mapping[str, Any],
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(customizations)
                .where(customizations.c.id == custom_id)
                .values(
                    progress=pct,
                    steps_completed=steps,
                    epochs_completed=epochs,
                    runtime_seconds=runtime_s,
                    metrics=_dumps(metrics),
                )
            )

    def end_customization(
        self,
        custom_id: str,
        status: str,
        started: float,
        metrics: Mapping[str, Any],
        *,
        error: str | None = None,
        adapter_path: str | None = None,
        customized_model: str | None = None,
        steps: int | None = None,
        epochs: int | None = None,
    ) -> None:
        now = time.time()
        values: dict[str, Any] = {
            "status": status,
            "finished_at": now,
            "runtime_seconds": now - started,
            "metrics": _dumps(metrics),
            "error": error,
        }
        if status == "completed":
            values.update(progress=100.0, adapter_path=adapter_path, customized_model=customized_model)
        if steps is not None:
            values["steps_completed"] = steps
        if epochs is not None:
            values["epochs_completed"] = epochs
        with self.engine.begin() as conn:
            conn.execute(update(customizations).where(customizations.c.id == custom_id).values(**values))

    def customization_metrics(self, job_id: str, candidate_id: str) -> dict[str, Any]:
        """The stored training figures (loss curves …) of a candidate's customization ({} if none)."""
        with self.engine.connect() as conn:
            metrics = conn.scalar(
                select(customizations.c.metrics).where(
                    customizations.c.job_id == job_id, customizations.c.candidate_id == candidate_id
                )
            )
        return dict(_loads(metrics, {}) or {})

    def adapter_path(self, job_id: str, candidate: str) -> str | None:
        """Where the completed customization of ``candidate`` saved its adapter (None if there is none)."""
        with self.engine.connect() as conn:
            return conn.scalar(  # type: ignore[no-any-return]
                select(customizations.c.adapter_path)
                .join(job_candidates, job_candidates.c.id == customizations.c.candidate_id)
                .where(
                    customizations.c.job_id == job_id,
                    job_candidates.c.model_name == candidate,
                    customizations.c.status == "completed",
                )
                .order_by(customizations.c.finished_at.desc())
            )

    # ------------------------------------------------------------------------------------------- report reads

    def samples(
        self,
        job_id: str,
        *,
        candidate: str | None = None,
        eval_type: str | None = None,
        max_score: float | None = None,
        search: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """Stored per-sample evidence, lowest score first; returns (page, total matching).

        Each item: ``candidate``, ``eval_type`` (as stored), ``position``, ``score`` and the parsed ``sample``.
        """
        self.job(job_id)  # NotFoundError for an unknown job
        conditions = [evaluations.c.job_id == job_id]
        if candidate is not None:
            conditions.append(job_candidates.c.model_name == candidate)
        if eval_type is not None:
            conditions.append(evaluations.c.eval_type == eval_type)
        if max_score is not None:
            conditions.append(evaluation_samples.c.score <= max_score)
        if search:
            conditions.append(
                func.lower(evaluation_samples.c.sample).contains(search.lower(), autoescape=True)
            )
        joined = evaluation_samples.join(
            evaluations, evaluation_samples.c.evaluation_id == evaluations.c.id
        ).join(job_candidates, evaluations.c.candidate_id == job_candidates.c.id)
        where = and_(*conditions)
        query = (
            select(
                job_candidates.c.model_name,
                evaluations.c.eval_type,
                evaluation_samples.c.position,
                evaluation_samples.c.score,
                evaluation_samples.c.sample,
            )
            .select_from(joined)
            .where(where)
            .order_by(
                evaluation_samples.c.score.is_(None),
                evaluation_samples.c.score,
                job_candidates.c.position,
                evaluations.c.eval_type,
                evaluation_samples.c.position,
            )
            .limit(limit)
            .offset(offset)
        )
        with self.engine.connect() as conn:
            rows = list(conn.execute(query))
            total = int(conn.scalar(select(func.count()).select_from(joined).where(where)) or 0)
        page = [
            {
                "candidate": r.model_name,
                "eval_type": r.eval_type,
                "position": r.position,
                "score": r.score,
                "sample": orjson.loads(r.sample),
            }
            for r in rows
        ]
        return page, total

    def logged_models(self, workload_id: str, client_id: str, *, recent: int) -> Counter[str]:
        """How often each model is named by the workload's ``recent`` newest log records (``request.model``,
        else ``response.model``)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(log_records.c.data)
                .where(log_records.c.workload_id == workload_id, log_records.c.client_id == client_id)
                .order_by(log_records.c.timestamp.desc())
                .limit(recent)
            ).scalars()
            names: Counter[str] = Counter()
            for data in rows:
                try:
                    model = RecordView(orjson.loads(data)).model
                except orjson.JSONDecodeError:
                    continue
                if model is not None:
                    names[model] += 1
        return names
