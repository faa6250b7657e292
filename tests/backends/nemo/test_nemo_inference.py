"""Inference and embeddings through the NIM proxy, built by the registry as the pipeline builds them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backends.nemo.emulator import EmulatorURLs, NemoEmulator, chat_completion
from flywheel.backends import ChatRequest, InferenceBackend
from flywheel.backends.nemo import CustomizedModel, NimDeployment, PlatformEndpoints
from flywheel.backends.nemo import _factories as nemo_factories
from flywheel.backends.registry import (
    backend_roles,
    build_deployment_backend,
    build_embedding_backend,
    build_inference_backend,
)
from flywheel.config import EmbeddingConfig, NIMConfig
from flywheel.config._models import NMPConfig
from flywheel.errors import BackendError, ConfigError

MODEL = "meta/llama-3.2-1b-instruct"
EMBEDDER = "nvidia/llama-3.2-nv-embedqa-1b-v2"


def _env(urls: EmulatorURLs, **extra: str) -> dict[str, str]:
    return {
        "NEMO_BASE_URL": urls.nemo_base_url,
        "NIM_BASE_URL": urls.nim_base_url,
        "DATASTORE_BASE_URL": urls.datastore_base_url,
        "NMP_NAMESPACE": "flywheel-test",
        **extra,
    }


def _ask(text: str) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], max_tokens=16)


def test_the_nemo_backend_offers_inference_training_embeddings_and_deployment() -> None:
    assert backend_roles("nemo") == {"inference", "training", "embeddings", "deployment"}


def test_a_candidate_is_answered_by_the_nim_proxy_through_the_openai_protocol(
    emu: NemoEmulator, urls: EmulatorURLs
) -> None:
    emu.nim_models.add(MODEL)
    backend = build_inference_backend(NIMConfig(model_name=MODEL, backend="nemo"), env=_env(urls))
    try:
        assert isinstance(backend, InferenceBackend) and backend.name == MODEL
        out = backend.generate([_ask("classify this headline please"), _ask("hi")])
    finally:
        backend.close()
    assert [g.content for g in out] == ["classify this headline please", "hi"]
    assert [g.prompt_tokens for g in out] == [4, 1] and all(g.error is None for g in out)
    [first, _] = emu.requests_to("POST", r"/nim/v1/chat/completions")
    assert first.json()["model"] == MODEL


def test_a_customized_candidate_is_addressed_by_its_customizer_output_name(
    emu: NemoEmulator, urls: EmulatorURLs, tmp_path: Path
) -> None:
    customized = "flywheel-test/customized-meta-llama-3.2-1b-instruct@cust-abc"
    emu.nim_models.add(customized)
    emu.chat_script = lambda body: chat_completion(f"[[[{body['model']}]]]")
    CustomizedModel(customized, job_id="cust-abc", base_model=MODEL).write(tmp_path / "adapter")
    nim = NIMConfig(model_name=MODEL, backend="nemo")
    backend = build_inference_backend(nim, adapter_dir=tmp_path / "adapter", env=_env(urls))
    try:
        [answer] = backend.generate([_ask("hi")])
    finally:
        backend.close()
    assert answer.content == f"[[[{customized}]]]" and backend.name == customized


def test_an_adapter_the_nemo_backend_did_not_produce_is_refused(urls: EmulatorURLs, tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="not an adapter the nemo backend produced"):
        build_inference_backend(
            NIMConfig(model_name=MODEL, backend="nemo"), adapter_dir=tmp_path, env=_env(urls)
        )


def test_the_platform_may_come_from_nmp_config_instead_of_the_environment(
    emu: NemoEmulator, urls: EmulatorURLs
) -> None:
    emu.nim_models.add(MODEL)
    nmp = NMPConfig(
        nemo_base_url=urls.nemo_base_url,
        nim_base_url=urls.nim_base_url,
        datastore_base_url=urls.datastore_base_url,
    )
    backend = nemo_factories.inference(
        NIMConfig(model_name=MODEL, backend="nemo"), adapter_dir=None, cache_dir=None, env={}, nmp=nmp
    )
    try:
        assert backend.generate([_ask("ok")])[0].content == "ok"
    finally:
        backend.close()
    assert PlatformEndpoints.from_config(nmp, {}).namespace == "dfwbp"  # the blueprint's default namespace


def test_a_platform_without_urls_is_a_config_error_naming_keys_and_variables() -> None:
    with pytest.raises(ConfigError) as caught:
        build_inference_backend(NIMConfig(model_name=MODEL, backend="nemo"), env={})
    message = str(caught.value)
    assert "nmp_config.nemo_base_url (or $NEMO_BASE_URL)" in message and "$NIM_BASE_URL" in message
    assert [key for key, _ in caught.value.problems] == [
        "nmp_config.nemo_base_url",
        "nmp_config.nim_base_url",
        "nmp_config.datastore_base_url",
    ]


def test_embeddings_come_from_the_nim_with_input_type_query(emu: NemoEmulator, urls: EmulatorURLs) -> None:
    emu.nim_models.add(EMBEDDER)
    emu.asymmetric_embedding_models.add(EMBEDDER)  # answers 400 without input_type
    config = EmbeddingConfig(deployment_type="local", model_name=EMBEDDER)
    embedder = build_embedding_backend(config, backend="nemo", env=_env(urls))
    texts = ["reset my password", "football tonight", "reset my password please"]
    vectors = np.asarray(embedder.embed(texts))
    assert vectors.shape == (3, 8) and np.isfinite(vectors).all()
    np.testing.assert_allclose(np.asarray(embedder.embed(texts[1:2]))[0], vectors[1])
    bodies = [r.json() for r in emu.requests_to("POST", r"/nim/v1/embeddings")]
    assert {b["input_type"] for b in bodies} == {"query"} and {b["model"] for b in bodies} == {EMBEDDER}


def test_a_deployment_backend_is_built_from_the_candidate_by_the_registry(urls: EmulatorURLs) -> None:
    nim = NIMConfig(model_name=MODEL, backend="nemo", tag="1.8.3", gpus=1)
    deployment = build_deployment_backend(nim, env={**_env(urls), "NMP_POLL_INTERVAL_S": "0.5"})
    assert isinstance(deployment, NimDeployment)
    assert (
        repr(deployment)
        == "NimDeployment('flywheel-test/meta-llama-3.2-1b-instruct', started_by_flywheel=False)"
    )
    assert deployment.poll_interval_s == 0.5
    deployment.close()
    with pytest.raises(ConfigError, match="NMP_POLL_INTERVAL_S must be a positive number"):
        build_deployment_backend(nim, env={**_env(urls), "NMP_POLL_INTERVAL_S": "soon"})
