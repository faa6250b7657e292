"""Parity: every built-in backend that claims a role passes the same contract tests for that role.

Backends are built through the registry, as the pipeline builds them: ``scripted`` as it is, ``openai`` against the
loopback OpenAI server, ``nemo`` against the NeMo platform emulator, ``local`` on the packaged small model with tiny
settings (marked slow: 2 requests of at most 8 tokens, 2 training steps of at most 64 tokens). A backend that gains a
role must be added to :data:`PARITY`.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backends.local.local_engine_data import example, split_headlines
from backends.nemo.emulator import Phase, serve_emulator
from backends.openai_compat.loopback_openai import LoopbackOpenAI, Reply, chat_completion, last_user_text
from flywheel.backends import (
    BaseWeights,
    ChatRequest,
    DeploymentBackend,
    EmbeddingBackend,
    Generation,
    InferenceBackend,
    MergeBackend,
    TrainedAdapter,
    TrainingBackend,
    TrainingProgress,
    registry,
)
from flywheel.backends.registry import (
    backend_roles,
    build_deployment_backend,
    build_embedding_backend,
    build_inference_backend,
    build_merge_backend,
    build_training_backend,
)
from flywheel.config import CustomizerConfig, EmbeddingConfig, LoRAConfig, NIMConfig, TrainingConfig
from flywheel.errors import BackendError, JobCancelled

LOCAL_MODEL = "smollm2-135m-instruct"
MAX_TOKENS = 8
#: role → the backends this suite runs its contract against (the slow ones load a real model).
PARITY: dict[str, dict[str, bool]] = {
    "inference": {"scripted": False, "openai": False, "nemo": False, "local": True},
    "training": {"scripted": False, "nemo": False, "local": True},
    "embeddings": {"scripted": False, "openai": False, "nemo": False, "local": True},
    "merge": {"local": False},
    "deployment": {"nemo": False},
}


def _backends(role: str) -> list[Any]:
    return [
        pytest.param(name, marks=[pytest.mark.slow] if slow else [], id=name)
        for name, slow in PARITY[role].items()
    ]


def test_every_built_in_backend_claiming_a_role_runs_its_contract() -> None:
    claimed = {(role, name) for name in registry._BUILT_IN for role in backend_roles(name)}
    covered = {(role, name) for role, names in PARITY.items() for name in names}
    assert claimed == covered


# ---------------------------------------------------------------------------------------------------- servers


def _chat_script(body: dict[str, Any], call: int) -> Reply:
    """An OpenAI server that echoes the last user message within max_tokens (a word = a token) and calls the
    first offered tool, with usage counted in words."""
    words = last_user_text(body).split()[: body.get("max_tokens") or None]
    prompt_words = sum(len(str(m.get("content") or "").split()) for m in body["messages"])
    tools = body.get("tools") or []
    calls = None
    if tools:
        name = tools[0]["function"]["name"]
        calls = [
            {"id": "call_0", "type": "function", "function": {"name": name, "arguments": '{"city": "Paris"}'}}
        ]
    return Reply(body=chat_completion(None if calls else " ".join(words), calls, prompt_words, len(words)))


def _embedding_script(body: dict[str, Any], call: int) -> Reply:
    """An OpenAI server embedding each text as a few numbers derived from it, listed in reverse order."""
    texts = body["input"]
    data = [
        {"index": i, "embedding": [float(len(t)), float(t.count(" ")), float(zlib.crc32(t.encode()) % 97)]}
        for i, t in enumerate(texts)
    ]
    return Reply(body={"object": "list", "data": data[::-1], "model": body["model"]})


@pytest.fixture
def resources(request: pytest.FixtureRequest) -> Iterator[ExitStack]:
    """Why: servers and backends a contract test opens are closed when it ends, whether it passed or not."""
    with ExitStack() as stack:
        yield stack


def _nemo_platform(resources: ExitStack, *served: str) -> dict[str, str]:
    """Serve the NeMo platform emulator with ``served`` models (chat as :func:`_chat_script`, deployments ready at
    once); the environment that points the ``nemo`` backend at it. The suite's HF_HUB_OFFLINE is lifted: the Data
    Store that datasets go to through ``huggingface_hub`` is the emulator on loopback."""
    from huggingface_hub import constants

    resources.enter_context(pytest.MonkeyPatch.context()).setattr(constants, "HF_HUB_OFFLINE", False)
    emu, urls = resources.enter_context(serve_emulator())
    emu.nim_models.update(served)
    emu.chat_script = lambda body: _chat_script(body, 0).body
    emu.script("deployment", [Phase("ready", None)])
    return {
        "NEMO_BASE_URL": urls.nemo_base_url,
        "NIM_BASE_URL": urls.nim_base_url,
        "DATASTORE_BASE_URL": urls.datastore_base_url,
    }


# ---------------------------------------------------------------------------------------------------- inference


@pytest.fixture
def inference_backend(request: pytest.FixtureRequest, resources: ExitStack) -> InferenceBackend:
    """Why: the contract tests run unchanged against each backend that claims inference, built by the registry."""
    name = request.param
    env: dict[str, str] = {}
    cache_dir = None
    nim = NIMConfig(model_name="parity-candidate", backend=name)
    if name == "openai":
        server = resources.enter_context(LoopbackOpenAI(_chat_script))
        nim = NIMConfig(model_name="parity-candidate", backend=name, base_url=f"{server.base_url}/v1")
    elif name == "nemo":
        env = _nemo_platform(resources, "parity-candidate")
    elif name == "local":
        nim = NIMConfig(model_name=LOCAL_MODEL, backend=name, model_path=LOCAL_MODEL)
        cache_dir = request.getfixturevalue("model_cache")
        env = {
            "FLYWHEEL_DTYPE": "float32"
        }  # the automatic CPU dtype is a timing race; the contract wants repeats
    backend = build_inference_backend(nim, cache_dir=cache_dir, env=env)
    resources.callback(backend.close)
    return backend


def _ask(text: str, **kwargs: Any) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], max_tokens=MAX_TOKENS, **kwargs)


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.mark.parametrize("inference_backend", _backends("inference"), indirect=True)
def test_generate_returns_one_generation_per_request_in_order(inference_backend: InferenceBackend) -> None:
    long = _ask("Name three colours of the rainbow and say which one of them you like best, and why.")
    short = _ask("Hi")
    out = inference_backend.generate([long, short])
    assert len(out) == 2 and all(isinstance(g, Generation) for g in out)
    # The prompts differ in length, so their prompt token counts show which answer went back to which request.
    assert out[0].prompt_tokens > out[1].prompt_tokens > 0
    swapped = inference_backend.generate([short, long])
    assert [g.prompt_tokens for g in swapped] == [out[1].prompt_tokens, out[0].prompt_tokens]
    for generation in out:
        assert generation.error is None
        assert isinstance(generation.content, str) and generation.tool_calls is None
        assert (
            isinstance(generation.completion_tokens, int) and 0 < generation.completion_tokens <= MAX_TOKENS
        )
        assert generation.latency_s >= 0
        assert generation.to_message() == {"role": "assistant", "content": generation.content}
    assert inference_backend.generate([]) == []


@pytest.mark.parametrize("inference_backend", _backends("inference"), indirect=True)
def test_tool_calls_come_back_in_the_openai_shape(inference_backend: InferenceBackend) -> None:
    request = _ask("What is the weather in Paris? Use the tool.", tools=[WEATHER_TOOL])
    [generation] = inference_backend.generate([request])
    assert generation.error is None
    assert generation.content is not None or generation.tool_calls
    for call in generation.tool_calls or []:
        assert call["type"] == "function" and isinstance(call["id"], str)
        assert isinstance(call["function"]["name"], str) and isinstance(call["function"]["arguments"], str)
    if generation.tool_calls:
        assert generation.to_message()["tool_calls"] == generation.tool_calls


# ---------------------------------------------------------------------------------------------------- training


@pytest.fixture
def training_backend(request: pytest.FixtureRequest, resources: ExitStack) -> TrainingBackend:
    """Why: the contract tests run unchanged against each backend that claims training, built by the registry."""
    name = request.param
    nim = NIMConfig(model_name="parity-candidate", backend=name)
    cache_dir = None
    env = {"FLYWHEEL_DTYPE": "float32"}
    if name == "local":
        nim = NIMConfig(model_name=LOCAL_MODEL, backend=name, model_path=LOCAL_MODEL)
        cache_dir = request.getfixturevalue("model_cache")
    elif name == "nemo":
        env = {**_nemo_platform(resources), "NMP_POLL_INTERVAL_S": "0.01"}
        target = CustomizerConfig(target="parity/candidate@1", gpus=1)
        nim = NIMConfig(
            model_name="parity/candidate", backend=name, customization_enabled=True, customizer_configs=target
        )
    training = TrainingConfig(
        epochs=1, batch_size=2, max_steps=2, max_seq_length=64, learning_rate=1e-3, seed=0
    )
    return build_training_backend(nim, training, LoRAConfig(adapter_dim=4), cache_dir=cache_dir, env=env)


def _examples() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    train, held_out = split_headlines()
    return [example(h, t) for h, t in train[:4]], [example(h, t) for h, t in held_out[:2]]


@pytest.mark.parametrize("training_backend", _backends("training"), indirect=True)
def test_train_returns_an_adapter_with_losses_and_reports_progress(
    training_backend: TrainingBackend, tmp_path: Path
) -> None:
    train, val = _examples()
    progress: list[TrainingProgress] = []
    adapter = training_backend.train(train, val, tmp_path, on_progress=progress.append)
    assert isinstance(adapter, TrainedAdapter)
    assert adapter.adapter_dir.is_dir() and adapter.adapter_dir.is_relative_to(tmp_path)
    assert any(adapter.adapter_dir.iterdir())
    assert adapter.base_model and adapter.steps_completed == 2 and not adapter.stopped_early
    assert [p.step for p in progress] == [1, 2] and {p.total_steps for p in progress} == {2}
    assert [step for step, _ in adapter.train_losses] == [1, 2]
    assert all(math.isfinite(loss) and loss > 0 for _, loss in adapter.train_losses)
    assert progress[-1].val_loss is not None and adapter.val_losses  # validated at the end of the run


@pytest.mark.parametrize("training_backend", _backends("training"), indirect=True)
def test_train_honours_should_stop_with_job_cancelled(
    training_backend: TrainingBackend, tmp_path: Path
) -> None:
    train, val = _examples()
    progress: list[TrainingProgress] = []
    with pytest.raises(JobCancelled):
        training_backend.train(
            train, val, tmp_path, on_progress=progress.append, should_stop=lambda: bool(progress)
        )
    assert [p.step for p in progress] == [1]  # stopped before the second step


# ---------------------------------------------------------------------------------------------------- embeddings


@pytest.fixture
def embedding_backend(request: pytest.FixtureRequest, resources: ExitStack) -> EmbeddingBackend:
    """Why: the contract tests run unchanged against each backend that claims embeddings, built by the registry."""
    name = request.param
    config = EmbeddingConfig(deployment_type="local")
    if name == "openai":
        server = resources.enter_context(LoopbackOpenAI(_embedding_script, paths=("/v1/embeddings",)))
        config = EmbeddingConfig(
            deployment_type="remote", url=f"{server.base_url}/v1", model_name="parity-emb"
        )
    env: dict[str, str] = {}
    if name == "nemo":
        env = _nemo_platform(resources, "parity-emb")
        config = EmbeddingConfig(deployment_type="local", model_name="parity-emb")
    embedder = build_embedding_backend(config, backend=name, env=env)
    close = getattr(embedder, "close", None)
    if close is not None:
        resources.callback(close)
    return embedder


TEXTS = ["How do I reset my password?", "I forgot my password, how to reset it", "Football scores tonight"]


@pytest.mark.parametrize("embedding_backend", _backends("embeddings"), indirect=True)
def test_embed_gives_one_vector_per_text_of_one_dimension_deterministically(
    embedding_backend: EmbeddingBackend,
) -> None:
    vectors = np.asarray(embedding_backend.embed(TEXTS))
    assert vectors.ndim == 2 and vectors.shape[0] == len(TEXTS) and vectors.shape[1] > 0
    assert np.issubdtype(vectors.dtype, np.floating) and np.isfinite(vectors).all()
    assert len({tuple(row) for row in vectors.tolist()}) == len(TEXTS)  # different texts, different vectors
    np.testing.assert_allclose(np.asarray(embedding_backend.embed(TEXTS)), vectors, rtol=1e-5, atol=1e-6)
    # A text's vector does not depend on the batch it came in (nor on its position in it).
    alone = np.asarray(embedding_backend.embed(TEXTS[2:]))
    assert alone.shape == (1, vectors.shape[1])
    np.testing.assert_allclose(alone[0], vectors[2], rtol=1e-4, atol=1e-4)
    assert len(embedding_backend.embed([])) == 0


# ---------------------------------------------------------------------------------------------------- merge


@pytest.mark.parametrize("name", _backends("merge"))
def test_a_merge_backend_locates_base_weights_or_says_why_not(name: str, tmp_path: Path) -> None:
    merger = build_merge_backend(name, LOCAL_MODEL)
    assert isinstance(merger, MergeBackend)
    weights = merger.base_weights()
    assert isinstance(weights, BaseWeights) and Path(weights.path).exists()
    with pytest.raises(BackendError, match="not found"):
        build_merge_backend(name, str(tmp_path / "gone.gguf")).base_weights()


# ---------------------------------------------------------------------------------------------------- deployment


@pytest.mark.parametrize("name", _backends("deployment"))
def test_deploy_serves_the_candidate_and_undeploy_stops_what_it_started(
    name: str, resources: ExitStack
) -> None:
    import httpx

    env = _nemo_platform(resources)
    nim = NIMConfig(model_name="parity/candidate", backend=name, tag="1.0", gpus=1)
    deployment = build_deployment_backend(nim, env=env)
    assert isinstance(deployment, DeploymentBackend)
    base_url = deployment.deploy()
    assert base_url.endswith("/v1")
    served = [m["id"] for m in httpx.get(f"{base_url}/models").json()["data"]]
    assert served == ["parity/candidate"]
    deployment.undeploy()
    assert httpx.get(f"{base_url}/models").json()["data"] == []
