"""``/api/jobs``: start, list, inspect, cancel and delete flywheel runs (paths and shapes of the reference)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from flywheel.service.api._errors import error_responses
from flywheel.service.api._params import JobId, Limit, Offset, Order, text_query
from flywheel.service.jobs import JobRepository, JobRequest, job_report, job_samples, remove_job, submit_job

router = APIRouter(tags=["jobs"])

JobStatus = Literal["pending", "running", "completed", "failed", "cancelled"]


class JobResponse(BaseModel):
    id: str
    status: str = Field(description="Always 'queued' (as in the reference); the job itself starts 'pending'.")
    message: str


class JobListResponse(BaseModel):
    jobs: list[dict[str, Any]]
    total: int = Field(description="Jobs matching the filters.")
    limit: int
    offset: int


class JobActionResponse(BaseModel):
    id: str
    message: str


def _repo(request: Request) -> JobRepository:
    return JobRepository(request.app.state.engine)


@router.post(
    "/jobs",
    response_model=JobResponse,
    summary="Start a flywheel run",
    responses=error_responses(400),  # a body that is not UTF-8 text (FastAPI's own answer)
)
async def create_job(body: JobRequest, request: Request) -> JobResponse:
    """Queue a run for one ``(workload_id, client_id)``. Overrides are validated now (422 naming the field)."""
    settings = request.app.state.settings
    job_id = await run_in_threadpool(submit_job, _repo(request), settings.config, body)
    request.app.state.executor.submit(job_id)
    return JobResponse(id=job_id, status="queued", message="NIM workflow started")


@router.get("/jobs", response_model=JobListResponse, summary="List flywheel runs")
async def list_jobs(
    request: Request,
    workload_id: Annotated[str | None, text_query("Only this workload.")] = None,
    client_id: Annotated[str | None, text_query("Only this client.")] = None,
    status: JobStatus | None = None,
    order: Annotated[
        Order,
        Query(
            description="asc: oldest first, the reference's order (so `.jobs[-1]` is the latest job); "
            "desc: newest first."
        ),
    ] = "asc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> JobListResponse:
    """Runs oldest first as in the reference (``order=desc``: newest first), with pagination and filters."""
    page, total = await run_in_threadpool(
        _repo(request).list_jobs,
        workload_id=workload_id,
        client_id=client_id,
        status=status,
        order=order,
        limit=limit,
        offset=offset,
    )
    return JobListResponse(jobs=page, total=total, limit=limit, offset=offset)


@router.get("/jobs/{job_id}", summary="A flywheel run in detail", responses=error_responses(404))
async def get_job(job_id: JobId, request: Request) -> dict[str, Any]:
    """The reference's job detail (``nims[].evaluations[].scores``…) plus n, intervals, usage and dataset stats."""
    detail = await run_in_threadpool(_repo(request).detail, job_id)
    return dict(
        detail
    )  # a plain mapping: a TypedDict return type would become a response model that drops keys


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobActionResponse,
    summary="Cancel a flywheel run",
    responses=error_responses(404, 409),
)
async def cancel_job(job_id: JobId, request: Request) -> JobActionResponse:
    """Stops training between steps and evaluation between batches; what finished is kept."""
    message = await run_in_threadpool(_repo(request).request_cancel, job_id)
    return JobActionResponse(id=job_id, message=message)


@router.delete(
    "/jobs/{job_id}",
    response_model=JobActionResponse,
    summary="Delete a finished flywheel run",
    responses=error_responses(404, 409),
)
async def delete_job(job_id: JobId, request: Request) -> JobActionResponse:
    """Removes the run, its datasets and adapters. Refused (409) while the run is active."""
    await run_in_threadpool(remove_job, _repo(request), request.app.state.settings.home, job_id)
    return JobActionResponse(id=job_id, message="Job deleted, with its datasets and adapters.")


class SamplesResponse(BaseModel):
    samples: list[dict[str, Any]]
    total: int = Field(description="Samples matching the filters.")
    limit: int
    offset: int


@router.get("/jobs/{job_id}/report", summary="A flywheel run's report", responses=error_responses(404))
async def get_report(job_id: JobId, request: Request) -> dict[str, Any]:
    """Scores with n and 95% CI, latency, tokens, cost per 1M requests against the teacher, and the recommendation
    (the cheapest candidate whose lower bound clears ``promotion.min_score``). Works while the job runs."""
    return await run_in_threadpool(job_report, request.app.state.engine, job_id)


@router.get(
    "/jobs/{job_id}/samples",
    response_model=SamplesResponse,
    summary="Per-sample evidence of a run",
    responses=error_responses(404),
)
async def get_samples(
    job_id: JobId,
    request: Request,
    candidate: Annotated[str | None, text_query("Only this candidate (nims[].model_name).")] = None,
    eval_type: Literal["base", "icl", "customized"] | None = None,
    max_score: Annotated[
        float | None,
        Query(
            ge=0.0, le=1.0, description="Only samples scoring at most this, in [0, 1] (0.99: divergent ones)."
        ),
    ] = None,
    search: Annotated[
        str | None, text_query("Substring of the prompt or either answer.", max_length=200)
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> SamplesResponse:
    """Teacher vs candidate answers with per-sample scores and judge verdicts, lowest score first."""
    page, total = await run_in_threadpool(
        job_samples,
        request.app.state.engine,
        job_id,
        candidate=candidate,
        eval_type=eval_type,
        max_score=max_score,
        search=search,
        limit=limit,
        offset=offset,
    )
    return SamplesResponse(samples=page, total=total, limit=limit, offset=offset)
