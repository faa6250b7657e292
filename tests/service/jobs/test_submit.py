"""`JobRequest`: the time window of a job is checked when it is submitted, naming the field."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from flywheel.service.jobs import JobRequest


def _fields(exc: ValidationError) -> set[str]:
    return {".".join(str(p) for p in err["loc"]) for err in exc.errors()}


@pytest.mark.parametrize("field", ["since", "until"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_time_is_rejected_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ValidationError) as info:
        JobRequest.model_validate({"workload_id": "w", "client_id": "c", field: value})
    assert _fields(info.value) == {field}
    assert "finite" in str(info.value)


def test_a_nan_sent_as_json_is_rejected_not_dropped() -> None:
    with pytest.raises(ValidationError) as info:
        JobRequest.model_validate_json('{"workload_id": "w", "client_id": "c", "since": NaN}')
    assert _fields(info.value) == {"since"}


@pytest.mark.parametrize(("since", "until"), [(200.0, 100.0), (100.0, 100.0)])
def test_since_not_before_until_is_rejected_on_until(since: float, until: float) -> None:
    with pytest.raises(ValidationError) as info:
        JobRequest(workload_id="w", client_id="c", since=since, until=until)
    assert _fields(info.value) == {"until"}
    assert "since" in str(info.value)


def test_a_valid_window_and_open_ends_are_kept() -> None:
    request = JobRequest(workload_id="w", client_id="c", since=100.0, until=200.0)
    assert (request.since, request.until) == (100.0, 200.0)
    assert JobRequest(workload_id="w", client_id="c", until=5.0).until == 5.0
    assert JobRequest(workload_id="w", client_id="c", since=5.0).since == 5.0


@pytest.mark.parametrize("value", ["false", "true", '"5"'])
def test_a_time_that_is_not_a_number_is_rejected_not_coerced(value: str) -> None:
    """Found by the schemathesis run: ``"since": false`` was coerced to 0 and the request accepted."""
    with pytest.raises(ValidationError) as info:
        JobRequest.model_validate_json(f'{{"workload_id": "w", "client_id": "c", "since": {value}}}')
    assert _fields(info.value) == {"since"}
    assert (
        JobRequest.model_validate_json('{"workload_id": "w", "client_id": "c", "since": 1760000000}').since
        == 1.76e9
    )
