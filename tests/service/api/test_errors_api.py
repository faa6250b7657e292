"""Every 4xx answer of the API has one shape, declared in the OpenAPI for the route that answers it; every number a
client sends is bounded, so a hostile value is a 422 naming it, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient

from flywheel.config import Settings
from flywheel.service.api import _logs, create_app
from flywheel.service.jobs import JobRepository
from scripted_jobs import job_config


class RecordingExecutor:
    """Accepts jobs without running them, so a submitted job stays pending (nothing else touches the store)."""

    def __init__(self) -> None:
        self.submitted: list[str] = []

    def submit(self, job_id: str) -> None:
        self.submitted.append(job_id)

    def stop(self, timeout: float | None = None) -> None:
        """Nothing runs, so nothing to stop."""


@pytest.fixture
def client(store_url: str, home: Path) -> Iterator[TestClient]:
    """Why: the real app on its own store (SQLite and PostgreSQL: they fail on different inputs) with an API key,
    so that 401 happens; server errors come back as 500 answers instead of exceptions, as a client sees them."""
    env = {"FLYWHEEL_DATABASE_URL": store_url, "FLYWHEEL_HOME": str(home), "FLYWHEEL_API_KEYS": "k1"}
    settings = Settings.from_env(job_config(), None, env)
    app = create_app(settings, executor=RecordingExecutor())
    with TestClient(app, raise_server_exceptions=False) as c:
        c.headers["Authorization"] = "Bearer k1"
        yield c


def _job(client: TestClient, status: str | None = None) -> str:
    """A job in the store: pending, or ended with ``status``."""
    response = client.post("/api/jobs", json={"workload_id": "news", "client_id": "web"})
    assert response.status_code == 200, response.text
    job_id = str(response.json()["id"])
    if status is not None:
        JobRepository(client.app.state.engine).end_job(job_id, status, "ended by the test")  # type: ignore[attr-defined]
    return job_id


def _openapi(client: TestClient) -> dict[str, Any]:
    return dict(client.get("/openapi.json").json())


# (method, route as in the OpenAPI, what to send, expected status). "{job}" is replaced by a real job's id.
ERROR_CASES = [
    ("post", "/api/logs", {"content": b"{not json"}, 400),
    ("post", "/api/logs", {"content": b"[" + b"{}," * 20 + b"{}]"}, 413),  # MAX_BODY_BYTES is lowered below
    ("post", "/api/logs", {"content": b"null"}, 422),  # neither a record nor an array of records
    ("get", "/api/jobs", {"headers": {"Authorization": "Bearer wrong"}}, 401),
    ("post", "/api/jobs", {"headers": {"Authorization": ""}, "json": {}}, 401),
    ("get", "/api/jobs/{job_id}", {"path": "nope"}, 404),
    ("post", "/api/jobs/{job_id}/cancel", {"path": "nope"}, 404),
    ("delete", "/api/jobs/{job_id}", {"path": "nope"}, 404),
    ("get", "/api/jobs/{job_id}/report", {"path": "nope"}, 404),
    ("get", "/api/jobs/{job_id}/samples", {"path": "nope"}, 404),
    ("post", "/api/jobs/{job_id}/cancel", {"path": "{completed}"}, 409),
    ("delete", "/api/jobs/{job_id}", {"path": "{pending}"}, 409),
    ("get", "/api/quarantine/{record_id}", {"path": "7"}, 404),
    (
        "post",
        "/api/jobs",
        {"json": {"workload_id": "news", "client_id": "web", "candidates": ["gpt-9"]}},
        422,
    ),
    ("post", "/api/jobs", {"json": {"workload_id": "news"}}, 422),
    ("get", "/api/jobs", {"params": {"limit": 0}}, 422),
]


@pytest.mark.parametrize(("method", "route", "send", "status"), ERROR_CASES)
def test_each_error_answer_is_declared_for_its_route_and_matches_the_declared_schema(
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    route: str,
    send: dict[str, Any],
    status: int,
) -> None:
    monkeypatch.setattr(_logs, "MAX_BODY_BYTES", 50)
    send = dict(send)
    path_value = send.pop("path", None)
    if path_value == "{completed}":
        path_value = _job(client, "completed")
    elif path_value == "{pending}":
        path_value = _job(client)
    url = route.replace("{job_id}", str(path_value)).replace("{record_id}", str(path_value))
    response = client.request(method.upper(), url, **send)
    assert response.status_code == status, response.text

    openapi = _openapi(client)
    declared = openapi["paths"][route][method]["responses"]
    assert str(status) in declared, (
        f"{method.upper()} {route} answers {status} but declares only {sorted(declared)}"
    )
    operation = schemathesis.openapi.from_dict(openapi)[route][method.upper()]
    operation.validate_response(response)  # raises when the body does not match the declared schema
    detail = response.json()["detail"]
    if status == 422:
        assert detail and all({"loc", "msg", "type"} <= set(item) for item in detail)
    else:
        assert isinstance(detail, str) and detail


def test_overrides_the_configuration_rejects_are_422_in_the_validation_list_shape(client: TestClient) -> None:
    unknown = client.post(
        "/api/jobs", json={"workload_id": "news", "client_id": "web", "candidates": ["gpt-9"]}
    )
    assert unknown.status_code == 422
    (item,) = unknown.json()["detail"]
    assert item["loc"] == ["body", "candidates"]
    assert "gpt-9" in item["msg"] and "configured: tiny" in item["msg"]
    assert item["type"] == "config_error"

    too_big = client.post(
        "/api/jobs",
        json={"workload_id": "news", "client_id": "web", "data_split_config": {"eval_size": 20000}},
    )
    assert too_big.status_code == 422
    (item,) = too_big.json()["detail"]
    assert item["loc"] == ["body", "data_split_config", "eval_size"]
    assert "limit" in item["msg"]


def test_every_route_with_a_job_id_declares_404_and_every_api_route_declares_401(client: TestClient) -> None:
    paths = _openapi(client)["paths"]
    for route, operations in paths.items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if route.startswith("/api/"):
                assert "401" in responses, f"{method} {route}"
            if "{job_id}" in route:
                assert "404" in responses, f"{method} {route}"
            for code, answer in responses.items():
                if code.startswith("4") and code != "422":
                    ref = answer["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorResponse"), (method, route, code)


# (route, query parameter, value): values past what the store's integers, SQL or floats can take.
HOSTILE_NUMBERS = [
    ("/api/jobs", "offset", 2**63),
    ("/api/jobs", "offset", 2**64 + 1),
    ("/api/jobs", "offset", -1),
    ("/api/jobs", "limit", 2**63),
    ("/api/jobs/{job}/samples", "offset", 2**63),
    ("/api/jobs/{job}/samples", "limit", 10**30),
    ("/api/jobs/{job}/samples", "max_score", "inf"),
    ("/api/jobs/{job}/samples", "max_score", "nan"),
    ("/api/jobs/{job}/samples", "max_score", "1e309"),
    ("/api/jobs/{job}/samples", "max_score", -0.5),
    ("/api/quarantine", "offset", 2**63),
    ("/api/quarantine", "limit", 501),
]


@pytest.mark.parametrize(("route", "name", "value"), HOSTILE_NUMBERS)
def test_out_of_range_numbers_in_the_query_are_422_naming_the_parameter(
    client: TestClient, route: str, name: str, value: Any
) -> None:
    url = route.replace("{job}", _job(client, "completed"))
    response = client.get(url, params={name: value})
    assert response.status_code == 422, response.text
    assert any(item["loc"] == ["query", name] for item in response.json()["detail"])


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ('"since": 1e300', ["body", "since"]),
        ('"until": -5', ["body", "until"]),
        ('"since": NaN', ["body", "since"]),  # Python's JSON parser takes NaN and Infinity
        (f'"data_split_config": {{"eval_size": {2**70}, "limit": null}}', ["body", "data_split_config"]),
        (f'"icl_config": {{"max_examples": {-(2**64)}}}', ["body", "icl_config"]),
        ('"data_split_config": {"val_ratio": Infinity}', ["body", "data_split_config"]),
    ],
)
def test_out_of_range_numbers_in_a_job_request_are_422(
    client: TestClient, fields: str, loc: list[str]
) -> None:
    body = f'{{"workload_id": "news", "client_id": "web", {fields}}}'.encode()
    response = client.post("/api/jobs", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert [item["loc"] for item in response.json()["detail"]] == [loc]


def test_quarantine_record_id_past_the_stores_integers_is_422(client: TestClient) -> None:
    response = client.get(f"/api/quarantine/{2**63}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "record_id"]


@pytest.mark.parametrize(
    ("method", "url", "send"),
    [
        ("get", "/api/jobs", {"params": {"workload_id": "news\x00"}}),
        ("get", "/api/jobs/a%00b", {}),
        ("post", "/api/jobs", {"json": {"workload_id": "news\x00", "client_id": "web"}}),
        ("post", "/api/jobs", {"json": {"workload_id": "news", "client_id": "w" * 256}}),
        ("post", "/api/jobs", {"json": {"workload_id": "news", "client_id": "web\ud800"}}),
        ("get", "/api/quarantine", {"params": {"reason": "\x00"}}),
    ],
)
def test_text_the_store_cannot_hold_is_422_not_a_database_error(
    client: TestClient, method: str, url: str, send: dict[str, Any]
) -> None:
    if "json" in send:  # a lone surrogate is valid JSON text but not something json.dumps in httpx will send
        import json

        send = {"content": json.dumps(send["json"]).encode(), "headers": {"Content-Type": "application/json"}}
    response = client.request(method.upper(), url, **send)
    assert response.status_code == 422, response.text


def test_every_number_a_route_takes_has_both_bounds_in_the_openapi(client: TestClient) -> None:
    openapi = _openapi(client)
    schemas = openapi["components"]["schemas"]

    def numeric(schema: dict[str, Any]) -> list[dict[str, Any]]:
        if "$ref" in schema:
            return numeric(schemas[schema["$ref"].rsplit("/", 1)[1]])
        found = [schema] if schema.get("type") in ("integer", "number") else []
        for option in schema.get("anyOf", []):
            found += numeric(option)
        return found

    unbounded = []
    for route, operations in openapi["paths"].items():
        for method, operation in operations.items():
            inputs = [(p["name"], p["schema"]) for p in operation.get("parameters", [])]
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            body_schema = body.get("schema", {})
            if "$ref" in body_schema:
                model = schemas[body_schema["$ref"].rsplit("/", 1)[1]]
                inputs += list(model.get("properties", {}).items())
            for name, schema in inputs:
                for number in numeric(schema):
                    low = "minimum" in number or "exclusiveMinimum" in number
                    high = "maximum" in number or "exclusiveMaximum" in number
                    if not (low and high):
                        unbounded.append(f"{method.upper()} {route} {name}")
    assert unbounded == []
