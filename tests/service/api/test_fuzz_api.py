"""A bounded schemathesis run over the app's own ``/openapi.json``, in-process (no network, no server).

For every operation it sends schema-valid requests and requests that break the schema (fixed seed and example
budget, so a run is repeatable and takes seconds), and asserts that no answer is a 5xx and that every answer has a
status the route declares, with a body that matches the schema declared for that status.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from flywheel.config import Settings
from flywheel.pipeline.ingest import ingest_objects
from flywheel.service.api import create_app
from flywheel.store import list_quarantined
from scripted_jobs import Harness, classification_logs, job_config

#: Fixed, so that a failure found once is found again.
SEED = 20_260_119
#: Most cases per operation and generation mode: about 550 requests per store, ~15 s on two cores.
EXAMPLES = 30
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


class _RecordingExecutor:
    """Accepts the jobs the fuzzer starts without running them: a run of the fuzzer only ever talks to the API."""

    def submit(self, job_id: str) -> None:
        """Nothing runs."""

    def stop(self, timeout: float | None = None) -> None:
        """Nothing to stop."""


@dataclass
class Tally:
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


@pytest.fixture
def api(store_url: str, home: Path) -> Iterator[tuple[Any, str, int]]:
    """Why: the app on a store (SQLite and PostgreSQL: they refuse different input) that has something to show,
    a finished job (detail, report, samples) and quarantined input, so that fixed-id cases validate real bodies;
    yields the schema, the job id and a quarantined record's id."""
    harness = Harness(store_url, home)
    harness.ingest(classification_logs(60))
    job_id = harness.submit()
    assert harness.run(job_id) == "completed"
    ingest_objects(harness.engine, [1, {"request": {}}], source="api")
    (record, *_), _ = list_quarantined(harness.engine)
    env = {"FLYWHEEL_DATABASE_URL": store_url, "FLYWHEEL_HOME": str(home), "FLYWHEEL_API_KEYS": ""}
    app = create_app(
        Settings.from_env(job_config(), None, env), engine=harness.engine, executor=_RecordingExecutor()
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    try:
        yield schema, job_id, record.id
    finally:
        from schemathesis.python import asgi

        asgi.shutdown_lifespans()
        harness.engine.dispose()


def _fuzz(operation: Any, strategy: Any, tally: Tally) -> None:
    @hypothesis.seed(SEED)
    @hypothesis.settings(
        max_examples=EXAMPLES,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: failures are collected, not raised
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=strategy)
    def run(case: Any) -> None:
        tally.cases += 1
        response = case.call()
        tally.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, FailureGroup) as exc:  # a failed check: kept, and the run goes on
            tally.failures.append(f"{operation.label} → {response.status_code}: {exc}"[:2000])

    run()


def test_no_5xx_and_every_answer_matches_the_openapi(api: tuple[Any, str, int]) -> None:
    schema, job_id, record_id = api
    tally = Tally()
    for result in schema.get_all_operations():
        operation = result.ok()
        _fuzz(operation, operation.as_strategy(), tally)
        # an operation that takes no input (GET /health) has nothing to break: Unsatisfiable
        with contextlib.suppress(hypothesis.errors.Unsatisfiable):
            _fuzz(operation, operation.as_strategy(generation_mode=GenerationMode.NEGATIVE), tally)
        # the same with ids that exist, so that detail, report, samples and records come back with bodies
        fixed = {"job_id": job_id} if "{job_id}" in operation.path else {}
        fixed |= {"record_id": record_id} if "{record_id}" in operation.path else {}
        if fixed and operation.method.upper() != "DELETE":  # deleting the job would end the fixed-id cases
            _fuzz(operation, operation.as_strategy(path_parameters=fixed), tally)
    print(f"\nschemathesis: {tally.cases} cases, statuses {dict(sorted(tally.statuses.items()))}")
    assert tally.cases > 400
    assert tally.server_errors == 0, tally.failures
    assert tally.failures == []
