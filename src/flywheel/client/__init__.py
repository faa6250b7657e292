"""A Python client for a flywheel server's HTTP API (``flywheel serve``): logs, jobs, reports, samples, quarantine.

::

    import flywheel

    with flywheel.Client("http://flywheel:8000", api_key="…") as fw:
        fw.logs(records)                                   # POST /api/logs, in batches
        job = fw.create_job("support-agent", "web")
        detail = fw.wait(job["id"], on_progress=lambda d: print(d["status"]))
        report = fw.report(job["id"])

:class:`Client` is synchronous, :class:`AsyncClient` the same methods for asyncio. Answers are plain dicts typed with
the server's shapes (:class:`JobDetail`, :class:`Report`, …); errors are :class:`flywheel.errors.FlywheelError`
subclasses. ``flywheel jobs|report|quarantine --server URL`` use this client. The server serves no export download:
``flywheel export`` runs where the job's adapters are.
"""

from flywheel.client._client import PAGE_SIZE, AsyncClient, Client
from flywheel.client._core import TERMINAL, WaitTimeout
from flywheel.client._types import (
    DatasetEntry,
    Health,
    IngestItemError,
    IngestResult,
    IngestSummary,
    JobAction,
    JobCreated,
    JobDetail,
    JobPage,
    JobSummary,
    JudgeVerdict,
    Metric,
    QuarantinedRecord,
    QuarantinePage,
    Report,
    Sample,
    SamplePage,
)

__all__ = [
    "PAGE_SIZE",
    "TERMINAL",
    "AsyncClient",
    "Client",
    "DatasetEntry",
    "Health",
    "IngestItemError",
    "IngestResult",
    "IngestSummary",
    "JobAction",
    "JobCreated",
    "JobDetail",
    "JobPage",
    "JobSummary",
    "JudgeVerdict",
    "Metric",
    "QuarantinePage",
    "QuarantinedRecord",
    "Report",
    "Sample",
    "SamplePage",
    "WaitTimeout",
]
