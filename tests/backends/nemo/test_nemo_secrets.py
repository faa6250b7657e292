"""Keys reach only the services they belong to, and never a log line or an error message."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from backends.nemo.emulator import EmulatorURLs, FakeClock, NemoEmulator, stalls
from flywheel.backends import ChatRequest
from flywheel.backends.nemo import (
    DeploymentSpec,
    NemoDatasets,
    NimDeployment,
    PlatformClient,
    PlatformEndpoints,
)
from flywheel.backends.registry import build_embedding_backend, build_inference_backend
from flywheel.config import EmbeddingConfig, NIMConfig
from flywheel.errors import BackendError

API_KEY = "nmp-key-5e3cr3t-do-not-log"
HF_TOKEN = "hf_datastore-5e3cr3t-do-not-log"
MODEL = "meta/llama-3.2-1b-instruct"
EMBEDDER = "nvidia/nv-embedqa-e5-v5"


@pytest.fixture
def keyed(emu: NemoEmulator, urls: EmulatorURLs) -> Iterator[dict[str, str]]:
    """Why: a platform that demands the platform key everywhere but the Data Store's Hugging Face API, which
    demands the HF token; the environment the backend reads both from."""
    emu.tokens.update(nemo=API_KEY, datastore=API_KEY, nim=API_KEY, hf=HF_TOKEN)
    yield {
        "NEMO_BASE_URL": urls.nemo_base_url,
        "NIM_BASE_URL": urls.nim_base_url,
        "DATASTORE_BASE_URL": urls.datastore_base_url,
        "NMP_NAMESPACE": "flywheel-test",
        "NMP_API_KEY": API_KEY,
        "HF_TOKEN": HF_TOKEN,
    }


def test_no_secret_appears_in_logs_or_errors_and_each_goes_only_where_it_belongs(
    emu: NemoEmulator, keyed: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, the SDK's, httpx's and huggingface_hub's included
    clock = FakeClock()
    endpoints = PlatformEndpoints.from_env(keyed)
    assert API_KEY not in repr(endpoints) and HF_TOKEN not in repr(endpoints)
    client = PlatformClient(endpoints, sleep=clock.sleep, max_retries=1)
    errors: list[str] = []
    try:
        emu.fail(
            "POST", r"/datastore/v1/hf/api/datasets/.*/commit/main", 503, "busy", times=1
        )  # a logged retry
        NemoDatasets(client).upload("d", {"eval_data.jsonl": b"{}\n"})
        nim = NimDeployment(
            client, DeploymentSpec.from_nim(_nim(), endpoints.namespace), clock=clock, sleep=clock.sleep
        )
        nim.deploy()
        emu.nim_models.add(EMBEDDER)
        backend = build_inference_backend(_nim(), env=keyed)
        assert backend.generate([_ask()])[0].error is None
        assert repr(backend).count("***") == 0 and API_KEY not in repr(backend)
        backend.close()
        embedder = build_embedding_backend(
            EmbeddingConfig(deployment_type="local", model_name=EMBEDDER), backend="nemo", env=keyed
        )
        assert len(embedder.embed(["a"])) == 1
        nim.undeploy()
        # Failures: a refused call, a stalled deployment.
        emu.fail("POST", r"/v1/datasets", 500, "echo of nothing secret", times=None)
        with pytest.raises(BackendError) as refused:
            NemoDatasets(client).upload("e", {"eval_data.jsonl": b"{}\n"})
        errors.append(str(refused.value))
        emu.script("deployment", stalls())
        with pytest.raises(BackendError) as stalled:
            spec = DeploymentSpec.from_nim(_nim(), endpoints.namespace)
            NimDeployment(client, spec, stall_timeout_s=20.0, clock=clock, sleep=clock.sleep).deploy()
        errors.append(str(stalled.value))
    finally:
        client.close()
    logged = caplog.text + "".join(str(record.args) for record in caplog.records)
    for secret in (API_KEY, HF_TOKEN):
        assert secret not in logged
        assert all(secret not in error for error in errors)
    assert "busy" in logged  # the retry was logged (so the check above looked at real log lines)
    hf_requests = [r for r in emu.requests if r.path.startswith("/datastore/v1/hf/")]
    other_requests = [r for r in emu.requests if not r.path.startswith("/datastore/v1/hf/")]
    assert hf_requests and other_requests
    assert {r.headers.get("authorization") for r in hf_requests} == {f"Bearer {HF_TOKEN}"}
    assert {r.headers.get("authorization") for r in other_requests} == {f"Bearer {API_KEY}"}


def test_without_an_hf_token_the_data_store_gets_the_placeholder_not_a_saved_hub_token(
    emu: NemoEmulator, urls: EmulatorURLs, client: PlatformClient
) -> None:
    NemoDatasets(client).upload("d", {"eval_data.jsonl": b"{}\n"})
    hf_requests = [r for r in emu.requests if r.path.startswith("/datastore/v1/hf/")]
    assert {r.headers.get("authorization") for r in hf_requests} == {"Bearer nothing"}
    assert all("authorization" not in r.headers for r in emu.requests if r not in hf_requests)


def _nim() -> NIMConfig:
    return NIMConfig(model_name=MODEL, backend="nemo", tag="1.8.3", gpus=1)


def _ask() -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": "hello"}], max_tokens=4)
