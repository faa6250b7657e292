"""``flywheel.Client`` / ``AsyncClient`` against the real app: logs, a job run to completion, paging, report, samples,
cancel and delete — each through both clients."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

import flywheel
from flywheel.client import AsyncClient, Client, JobDetail
from flywheel.errors import ConflictError, NotFoundError
from scripted_jobs import classification_logs


def _check_progress_calls(calls: list[JobDetail], final: JobDetail) -> None:
    """The callback saw the first answer, every change once, and the final detail last."""
    assert calls, "on_progress was never called"
    assert calls[-1] == final
    assert all(a != b for a, b in itertools.pairwise(calls)), "called twice with the same detail"
    statuses = [c["status"] for c in calls]
    assert "running" in statuses and statuses.count("completed") == 1, statuses


def _check_finished_job(detail: JobDetail, report: Any, job_id: str) -> None:
    assert detail["id"] == job_id and detail["status"] == "completed" and detail["finished_at"]
    assert {e["eval_type"] for e in detail["nims"][0]["evaluations"]} == {
        "base-eval",
        "icl-eval",
        "customized-eval",
    }
    assert detail["nims"][0]["evaluations"][0]["scores"]["f1_score"] == 1.0
    assert report["job_id"] == job_id and report["primary_metric"] == "f1_score"
    assert report["recommendation"]["status"] == "recommended"


def test_a_job_runs_to_completion_through_the_client(server: Any, fails_with: Any) -> None:
    with flywheel.Client(server.url, api_key=server.api_key) as fw:
        assert fw.health()["status"] == "ok"
        ingested = fw.logs(classification_logs(60), batch_size=25)
        assert (ingested["total"], ingested["accepted"], len(ingested["ingestion_ids"])) == (60, 60, 3)
        server.gate.clear()  # the job holds its first evaluation batch until the callback has seen it running
        created = fw.create_job("news", "web")
        assert (created["status"], created["message"]) == ("queued", "NIM workflow started")
        calls: list[JobDetail] = []

        def on_progress(detail: JobDetail) -> None:
            calls.append(detail)
            if detail["status"] == "running":
                server.gate.set()

        final = fw.wait(created["id"], on_progress=on_progress, poll_s=0.05, timeout_s=60)
        _check_progress_calls(calls, final)
        assert fw.get_job(created["id"]) == final
        _check_finished_job(final, fw.report(created["id"]), created["id"])

        page = fw.samples(created["id"], limit=5)
        assert page["limit"] == 5 and page["offset"] == 0 and len(page["samples"]) == 5
        everything = list(fw.iter_samples(created["id"], page_size=7))
        assert len(everything) == page["total"] > 7
        assert everything[:5] == page["samples"]
        icl = fw.samples(created["id"], eval_type="icl", candidate="tiny", limit=500)
        assert icl["samples"] and {s["eval_type"] for s in icl["samples"]} == {"icl"}
        assert icl["total"] == sum(1 for s in everything if s["eval_type"] == "icl")

        with fails_with(ConflictError, "Cannot cancel a job that has already finished."):
            fw.cancel_job(created["id"])
        deleted = fw.delete_job(created["id"])
        assert deleted == {"id": created["id"], "message": "Job deleted, with its datasets and adapters."}
        with fails_with(NotFoundError, f"Job with ID {created['id']} not found"):
            fw.get_job(created["id"])


def test_a_job_runs_to_completion_through_the_async_client(server: Any, fails_with: Any) -> None:
    async def main() -> None:
        async with flywheel.AsyncClient(server.url, api_key=server.api_key) as fw:
            assert (await fw.health())["status"] == "ok"
            ingested = await fw.logs(iter(classification_logs(60)), batch_size=40)
            assert (ingested["accepted"], len(ingested["ingestion_ids"])) == (60, 2)
            server.gate.clear()
            created = await fw.create_job("news", "web", candidates=["tiny"])
            calls: list[JobDetail] = []

            async def on_progress(detail: JobDetail) -> None:  # a coroutine function is awaited
                await asyncio.sleep(0)
                calls.append(detail)
                if detail["status"] == "running":
                    server.gate.set()

            final = await fw.wait(created["id"], on_progress=on_progress, poll_s=0.05, timeout_s=60)
            _check_progress_calls(calls, final)
            assert await fw.get_job(created["id"]) == final
            _check_finished_job(final, await fw.report(created["id"]), created["id"])

            page = await fw.samples(created["id"], limit=5)
            everything = [s async for s in fw.iter_samples(created["id"], page_size=7)]
            assert len(everything) == page["total"] > 7 and everything[:5] == page["samples"]

            with fails_with(ConflictError, "Cannot cancel a job that has already finished."):
                await fw.cancel_job(created["id"])
            deleted = await fw.delete_job(created["id"])
            assert deleted["id"] == created["id"]
            with fails_with(NotFoundError, f"Job with ID {created['id']} not found"):
                await fw.report(created["id"])

    asyncio.run(main())


def _three_finished_jobs(fw: Client) -> list[str]:
    fw.logs(classification_logs(60))
    ids = [fw.create_job("news", "web")["id"] for _ in range(3)]
    for job_id in ids:
        fw.wait(job_id, poll_s=0.05, timeout_s=60)
    return ids


def test_jobs_are_listed_page_by_page(server: Any) -> None:
    with Client(server.url, api_key=server.api_key) as fw:
        ids = _three_finished_jobs(fw)
        first = fw.list_jobs(limit=2)
        assert (first["total"], first["limit"], first["offset"]) == (3, 2, 0)
        assert [j["id"] for j in first["jobs"]] == ids[:2]  # oldest first, as the server's default
        assert [j["id"] for j in fw.list_jobs(limit=2, offset=2)["jobs"]] == ids[2:]
        assert [j["id"] for j in fw.list_jobs(order="desc", limit=1)["jobs"]] == ids[-1:]
        assert fw.list_jobs(workload_id="other")["total"] == 0
        assert fw.list_jobs(status="completed", client_id="web")["total"] == 3
        assert [j["id"] for j in fw.iter_jobs(page_size=2)] == ids
        assert [j["id"] for j in fw.iter_jobs(order="desc", page_size=1)] == ids[::-1]
        assert list(fw.iter_jobs(status="running")) == []

        async def main() -> None:
            async with AsyncClient(server.url, api_key=server.api_key) as afw:
                page = await afw.list_jobs(limit=2, offset=1)
                assert [j["id"] for j in page["jobs"]] == ids[1:]
                assert [j["id"] async for j in afw.iter_jobs(page_size=2)] == ids
                assert [j["id"] async for j in afw.iter_jobs(order="desc", page_size=2)] == ids[::-1]

        asyncio.run(main())


def _wait_running(fw: Client, job_id: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while fw.get_job(job_id)["status"] != "running":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.02)


def test_cancel_stops_a_running_job_which_can_then_be_deleted(server: Any, fails_with: Any) -> None:
    with Client(server.url, api_key=server.api_key) as fw:
        fw.logs(classification_logs(60))
        server.gate.clear()  # the job's first evaluation batch waits until the gate opens
        job_id = fw.create_job("news", "web")["id"]
        _wait_running(fw, job_id)
        with fails_with(ConflictError, "Cannot delete a running job. Please cancel the job first."):
            fw.delete_job(job_id)
        cancelled = fw.cancel_job(job_id)
        assert cancelled == {"id": job_id, "message": "Job cancellation initiated successfully."}
        server.gate.set()
        final = fw.wait(job_id, poll_s=0.05, timeout_s=60)
        assert final["status"] == "cancelled"
        assert fw.cancel_job(job_id)["message"] == "Job is already cancelled."
        assert fw.delete_job(job_id)["id"] == job_id


def test_async_cancel_stops_a_running_job(server: Any, fails_with: Any) -> None:
    async def main() -> None:
        async with AsyncClient(server.url, api_key=server.api_key) as fw:
            await fw.logs(classification_logs(60))
            server.gate.clear()
            job_id = (await fw.create_job("news", "web"))["id"]
            while (await fw.get_job(job_id))["status"] != "running":
                await asyncio.sleep(0.02)
            assert (await fw.cancel_job(job_id))["message"] == "Job cancellation initiated successfully."
            server.gate.set()
            assert (await fw.wait(job_id, poll_s=0.05, timeout_s=60))["status"] == "cancelled"
            assert (await fw.cancel_job(job_id))["message"] == "Job is already cancelled."
            assert (await fw.delete_job(job_id))["id"] == job_id

    asyncio.run(main())


def test_wait_gives_up_after_its_timeout_and_the_job_goes_on(server: Any) -> None:
    from flywheel.client import WaitTimeout

    with Client(server.url, api_key=server.api_key) as fw:
        fw.logs(classification_logs(60))
        server.gate.clear()
        job_id = fw.create_job("news", "web")["id"]
        calls: list[JobDetail] = []
        started = time.monotonic()
        with pytest.raises(WaitTimeout, match=rf"^Job {job_id} is still (pending|running) after 0.3 s;"):
            fw.wait(job_id, on_progress=calls.append, poll_s=0.05, timeout_s=0.3)
        assert time.monotonic() - started < 5
        assert calls and calls[0]["id"] == job_id
        assert isinstance(WaitTimeout("x"), TimeoutError)
        server.gate.set()
        assert fw.wait(job_id, poll_s=0.05, timeout_s=60)["status"] == "completed"


def test_wait_refuses_a_poll_interval_that_is_not_positive(server: Any) -> None:
    with (
        Client(server.url, api_key=server.api_key) as fw,
        pytest.raises(ValueError, match="poll_s must be positive"),
    ):
        fw.wait("any", poll_s=0)
