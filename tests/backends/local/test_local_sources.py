"""Model source resolution: packaged short name, GGUF file, HF directory, hub id, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.backends import ChatRequest
from flywheel.backends.local import PACKAGED_MODELS, resolve_model_source
from flywheel.errors import BackendError


def test_packaged_short_name_resolves_to_the_gguf_inside_the_installed_package() -> None:
    source = resolve_model_source("smollm2-135m-instruct")
    assert source.kind == "packaged"
    assert source.gguf_file == PACKAGED_MODELS["smollm2-135m-instruct"].filename
    assert (Path(source.path) / source.gguf_file).is_file()


def test_no_model_path_means_the_packaged_default() -> None:
    assert resolve_model_source(None).kind == "packaged"


def test_a_local_gguf_file_resolves_to_its_folder_and_name(packaged_gguf: Path) -> None:
    source = resolve_model_source(str(packaged_gguf))
    assert (source.kind, source.path, source.gguf_file) == (
        "gguf",
        str(packaged_gguf.parent),
        packaged_gguf.name,
    )


def test_a_folder_with_one_gguf_file_resolves_to_that_file(tmp_path: Path) -> None:
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    source = resolve_model_source(str(tmp_path))
    assert (source.kind, source.gguf_file) == ("gguf", "model.gguf")


def test_a_folder_with_several_gguf_files_is_ambiguous(tmp_path: Path) -> None:
    (tmp_path / "a.gguf").write_bytes(b"GGUF")
    (tmp_path / "b.gguf").write_bytes(b"GGUF")
    with pytest.raises(BackendError, match=r"several GGUF files \(a.gguf, b.gguf\)"):
        resolve_model_source(str(tmp_path))


def test_hf_directory_resolves_and_missing_tokenizer_is_named(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(BackendError, match=r"no tokenizer \(tokenizer.json or tokenizer.model\)"):
        resolve_model_source(str(tmp_path))
    (tmp_path / "tokenizer.json").write_text("{}")
    assert resolve_model_source(str(tmp_path)).kind == "hf_dir"


def test_hf_directory_without_weights_names_the_weights(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(BackendError, match=r"weights \(\*.safetensors or \*.bin\)"):
        resolve_model_source(str(tmp_path))


def test_missing_path_is_reported_with_the_path_and_the_alternatives(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.gguf"
    with pytest.raises(BackendError) as info:
        resolve_model_source(str(missing))
    message = str(info.value)
    assert str(missing) in message and "not found" in message and "smollm2-135m-instruct" in message


def test_a_file_that_is_not_gguf_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(BackendError, match=r"not a \.gguf file"):
        resolve_model_source(str(tmp_path / "weights.bin"))


def test_owner_slash_name_is_a_hub_id() -> None:
    source = resolve_model_source("HuggingFaceTB/SmolLM2-360M-Instruct")
    assert (source.kind, source.path) == ("hub", "HuggingFaceTB/SmolLM2-360M-Instruct")


@pytest.mark.slow
def test_gguf_is_converted_once_into_an_hf_folder_that_loads_and_answers_the_same(
    model_cache: Path, packaged_gguf: Path
) -> None:
    from flywheel.backends.local import LocalInferenceBackend

    request = ChatRequest(messages=[{"role": "user", "content": "Name a colour."}], max_tokens=8)
    from_gguf = LocalInferenceBackend(str(packaged_gguf), cache_dir=model_cache, dtype="float32")
    expected = from_gguf.generate([request])[0]
    from_gguf.close()
    converted = [p.parent for p in model_cache.glob("*/flywheel-source.json")]
    assert len(converted) == 1, "the GGUF load should have written one converted folder"
    assert resolve_model_source(str(converted[0])).kind == "hf_dir"

    from_dir = LocalInferenceBackend(str(converted[0]), dtype="float32")
    answer = from_dir.generate([request])[0]
    from_dir.close()
    assert answer.error is None and expected.error is None
    assert answer.content == expected.content and answer.completion_tokens == expected.completion_tokens
