"""The client's answer types hold the keys the server sends; the two clients offer the same methods; importing
flywheel stays cheap."""

from __future__ import annotations

import inspect
import subprocess
import sys
from typing import Any

import pytest

import flywheel
from flywheel import client as fc
from scripted_jobs import classification_logs


@pytest.mark.parametrize(
    ("shape", "model"),
    [
        ("JobCreated", "_jobs.JobResponse"),
        ("JobPage", "_jobs.JobListResponse"),
        ("JobAction", "_jobs.JobActionResponse"),
        ("SamplePage", "_jobs.SamplesResponse"),
        ("IngestResult", "_logs.IngestResponse"),
        ("IngestItemError", "_logs.ItemErrorOut"),
        ("QuarantinedRecord", "_quarantine.QuarantinedRecordOut"),
        ("QuarantinePage", "_quarantine.QuarantineListResponse"),
    ],
)
def test_each_shape_has_the_fields_of_the_servers_response_model(shape: str, model: str) -> None:
    import importlib

    module, name = model.split(".")
    server_model = getattr(importlib.import_module(f"flywheel.service.api.{module}"), name)
    assert set(getattr(fc, shape).__annotations__) == set(server_model.model_fields)


def test_the_summed_ingest_shape_differs_from_one_answer_only_in_its_ids() -> None:
    assert set(fc.IngestSummary.__annotations__) - set(fc.IngestResult.__annotations__) == {"ingestion_ids"}
    assert set(fc.IngestResult.__annotations__) - set(fc.IngestSummary.__annotations__) == {"ingestion_id"}


def test_answers_of_a_finished_job_have_exactly_the_typed_keys(server: Any) -> None:
    with fc.Client(server.url, api_key=server.api_key) as fw:
        fw.logs(classification_logs(60))
        job_id = fw.create_job("news", "web")["id"]
        detail = fw.wait(job_id, poll_s=0.05, timeout_s=60)
        assert set(detail) == set(fc.JobDetail.__annotations__)
        assert set(fw.list_jobs()["jobs"][0]) == set(fc.JobSummary.__annotations__)
        assert set(fw.report(job_id)) == set(fc.Report.__annotations__)
        sample = fw.samples(job_id, limit=1)["samples"][0]
        assert set(sample) == set(fc.Sample.__annotations__)
        assert set(fw.health()) == set(fc.Health.__annotations__)


def test_terminal_statuses_are_the_servers() -> None:
    from flywheel.service.jobs import TERMINAL

    assert fc.TERMINAL == TERMINAL


def _public(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if callable(member) and not name.startswith("_")
    }


def test_the_async_client_has_every_method_of_the_sync_one_with_the_same_parameters() -> None:
    sync, asyn = _public(fc.Client), _public(fc.AsyncClient)
    assert set(sync) - {"close"} == set(asyn) - {"aclose"}
    for name, signature in sync.items():
        if name != "close":
            assert list(signature.parameters) == list(asyn[name].parameters), name
    for name in ("iter_jobs", "iter_samples"):
        assert not inspect.iscoroutinefunction(
            getattr(fc.AsyncClient, name)
        )  # async iterators, not coroutines
    assert inspect.iscoroutinefunction(fc.AsyncClient.wait)


def test_the_clients_are_flywheels_lazy_attributes() -> None:
    assert flywheel.Client is fc.Client and flywheel.AsyncClient is fc.AsyncClient
    assert {"Client", "AsyncClient"} <= set(flywheel.__all__)


def test_import_flywheel_loads_no_http_client_and_the_client_no_server_code() -> None:
    code = (
        "import sys, flywheel\n"
        "assert 'httpx' not in sys.modules and 'flywheel.client' not in sys.modules, 'import flywheel'\n"
        "flywheel.Client\n"
        "heavy = [m for m in ('sqlalchemy', 'fastapi', 'pydantic', 'torch', 'flywheel.service') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
