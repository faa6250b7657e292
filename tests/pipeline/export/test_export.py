"""Exporting a finished job's fine-tuned candidate: adapter or merged model, model card, refusals.

The fast tests fabricate finished jobs with the scripted backends (orchestration only) and put a small but real
PEFT adapter where the job's customization saved its adapter. The slow test runs a real job on the packaged model,
exports both forms, reloads each with plain transformers (+ PEFT) and checks that it answers exactly as the job's
customized evaluation did.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flywheel.errors import BackendError, ConflictError, DataError, NotFoundError
from flywheel.pipeline.export import ADAPTER_FILES, FACTS_FILE, export_candidate
from scripted_jobs import Harness, ScriptedBackends, classification_logs, job_config

NAME = "smollm2-135m-instruct"
LOCAL_NIM = {"model_name": NAME, "backend": "local", "customization_enabled": True}


def write_peft_adapter(adapter_dir: Path) -> None:
    """A small but real PEFT LoRA adapter: its config and a safetensors file with one LoRA A/B pair."""
    adapter_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": NAME,
        "r": 2,
        "lora_alpha": 4,
        "target_modules": ["q_proj"],
    }
    (adapter_dir / "adapter_config.json").write_text(json.dumps(config))
    prefix = "base_model.model.model.layers.0.self_attn.q_proj"
    shapes = {f"{prefix}.lora_A.weight": [2, 576], f"{prefix}.lora_B.weight": [576, 2]}
    header: dict[str, Any] = {}
    offset = 0
    for name, shape in shapes.items():
        size = 4 * shape[0] * shape[1]
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)  # the safetensors header is padded to 8 bytes
    data = struct.pack("<Q", len(encoded)) + encoded + bytes(offset)
    (adapter_dir / "adapter_model.safetensors").write_bytes(data)


@pytest.fixture
def harness(sqlite_url: str, home: Path) -> Iterator[Harness]:
    """Why: a store with enough classification logs for a job, and scripted backends to run it in a second."""
    h = Harness(sqlite_url, home)
    h.ingest(classification_logs(60))
    yield h
    h.engine.dispose()


def finished_job(
    h: Harness,
    nim: dict[str, Any] | None = None,
    *,
    backends: ScriptedBackends | None = None,
    peft: bool = True,
) -> str:
    """Run a scripted job for one candidate; with ``peft``, replace its scripted adapter by a real PEFT one."""
    if backends is not None:
        h.backends = backends
    job_id = h.submit(job_config(nims=[nim or LOCAL_NIM]))
    assert h.run(job_id) == "completed"
    if peft:
        (adapter_dir,) = (h.home / "jobs" / job_id / "adapters").glob("*/adapter")
        write_peft_adapter(adapter_dir)
    return job_id


def adapter_dir_of(h: Harness, job_id: str) -> Path:
    (adapter_dir,) = (h.home / "jobs" / job_id / "adapters").glob("*/adapter")
    return adapter_dir


# ---------------------------------------------------------------------------------------------------- exporting


def test_adapter_export_copies_the_jobs_adapter_with_a_model_card(harness: Harness, tmp_path: Path) -> None:
    job_id = finished_job(harness)
    out = tmp_path / "export"
    result = export_candidate(harness.repo, job_id, NAME, out)

    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([*ADAPTER_FILES, "README.md", FACTS_FILE])
    for name in ADAPTER_FILES:
        assert (out / name).read_bytes() == (adapter_dir_of(harness, job_id) / name).read_bytes()
    assert result.kind == "adapter"
    assert result.total_bytes == sum(p.stat().st_size for p in out.iterdir())
    assert not list(tmp_path.glob(".export.export-*")), "the staging directory is removed"
    (tmp_path / "plain").mkdir()
    assert out.stat().st_mode == (tmp_path / "plain").stat().st_mode, "not the private mode of a temp dir"

    detail = harness.repo.detail(job_id)
    facts = json.loads((out / FACTS_FILE).read_text())
    assert facts["job"]["id"] == job_id
    assert (facts["job"]["workload_id"], facts["job"]["client_id"]) == ("news", "web")
    assert facts["base_model"]["source"]["kind"] == "packaged"
    assert facts["data"]["records_used"] == 60
    assert (facts["data"]["eval"], facts["data"]["train"], facts["data"]["val"]) == (20, 36, 4)
    assert facts["hyperparameters"]["training_config"]["batch_size"] == 4
    assert facts["hyperparameters"]["lora_config"]["adapter_dim"] == 32
    (nim,) = detail["nims"]
    stored = {ev["eval_type"]: ev["metrics"] for ev in nim["evaluations"]}
    assert {k: v["metrics"] for k, v in facts["evaluations"].items()} == stored
    listed = {f["path"]: f for f in facts["files"]}
    assert set(listed) == {*ADAPTER_FILES, "README.md"}
    assert {f.path: f.sha256 for f in result.files if f.path in listed} == {
        p: f["sha256"] for p, f in listed.items()
    }

    card = (out / "README.md").read_text()
    accuracy = stored["customized-eval"]["accuracy"]
    for expected in (
        job_id,
        "workload_id `news`",
        "client_id `web`",
        f"`{NAME}`",
        str(Path(facts["base_model"]["source"]["path"])),
        "| 60 | 20 | 20 | 36 | 4 | classification |",
        "`learning_rate` | `0.0001`",
        "`adapter_dim` | `32`",
        "### customized-eval",
        f"| accuracy | {accuracy['value']:.3f} | [{accuracy['ci_low']:.3f}, {accuracy['ci_high']:.3f}] (95%) | 20 |",
        "PeftModel.from_pretrained(base, ",
        str(out.resolve()),
    ):
        assert expected in card, expected


def test_a_non_empty_directory_is_refused_without_force(harness: Harness, tmp_path: Path) -> None:
    job_id = finished_job(harness)
    out = tmp_path / "export"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConflictError, match="--force"):
        export_candidate(harness.repo, job_id, NAME, out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_force_replaces_an_earlier_export_and_leaves_other_files(harness: Harness, tmp_path: Path) -> None:
    job_id = finished_job(harness)
    out = tmp_path / "export"
    export_candidate(harness.repo, job_id, NAME, out)
    (out / "notes.txt").write_text("mine")
    # A file the earlier export wrote and this one does not (e.g. weights of an earlier --merged export).
    (out / "model.safetensors").write_bytes(b"stale")
    facts = json.loads((out / FACTS_FILE).read_text())
    facts["files"].append({"path": "model.safetensors", "bytes": 5, "sha256": "x"})
    (out / FACTS_FILE).write_text(json.dumps(facts))

    export_candidate(harness.repo, job_id, NAME, out, force=True)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*ADAPTER_FILES, "README.md", FACTS_FILE, "notes.txt"]
    )
    assert (out / "notes.txt").read_text() == "mine"


def test_a_file_as_output_is_refused(harness: Harness, tmp_path: Path) -> None:
    job_id = finished_job(harness)
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(DataError, match="is a file"):
        export_candidate(harness.repo, job_id, NAME, target, force=True)


# ---------------------------------------------------------------------------------------------------- refusals


def test_an_unknown_job_is_not_found(harness: Harness, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="flywheel jobs list"):
        export_candidate(harness.repo, "01NOSUCHJOB", NAME, tmp_path / "out")


def test_an_unfinished_job_is_refused(harness: Harness, tmp_path: Path) -> None:
    job_id = harness.submit(job_config(nims=[LOCAL_NIM]))
    with pytest.raises(ConflictError, match="still pending"):
        export_candidate(harness.repo, job_id, NAME, tmp_path / "out")


def test_a_failed_job_is_refused(harness: Harness, tmp_path: Path) -> None:
    harness.backends = ScriptedBackends(fail_inference=True)
    job_id = harness.submit(job_config(nims=[LOCAL_NIM]))
    assert harness.run(job_id) == "failed"
    with pytest.raises(ConflictError, match="ended failed"):
        export_candidate(harness.repo, job_id, NAME, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_unknown_candidate_lists_the_jobs_candidates(harness: Harness, tmp_path: Path) -> None:
    job_id = finished_job(harness)
    with pytest.raises(NotFoundError, match=f"no candidate 'other'; its candidates are: {NAME}"):
        export_candidate(harness.repo, job_id, "other", tmp_path / "out")


def test_a_candidate_that_was_not_fine_tuned_is_refused(harness: Harness, tmp_path: Path) -> None:
    job_id = finished_job(harness, {**LOCAL_NIM, "customization_enabled": False}, peft=False)
    with pytest.raises(ConflictError, match=r"not fine-tuned.*customization_enabled is false"):
        export_candidate(harness.repo, job_id, NAME, tmp_path / "out")


def test_a_candidate_whose_fine_tuning_failed_is_refused(harness: Harness, tmp_path: Path) -> None:
    job_id = finished_job(harness, backends=ScriptedBackends(fail_training=True), peft=False)
    with pytest.raises(
        ConflictError, match="did not complete \\(status failed: RuntimeError: out of memory\\)"
    ):
        export_candidate(harness.repo, job_id, NAME, tmp_path / "out")


def test_missing_adapter_files_are_reported(harness: Harness, tmp_path: Path) -> None:
    job_id = finished_job(harness, peft=False)  # the scripted trainer writes no PEFT files
    with pytest.raises(DataError, match=r"adapter_config\.json, adapter_model\.safetensors missing"):
        export_candidate(harness.repo, job_id, NAME, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_remote_base_model_exports_its_adapter_but_cannot_be_merged(
    harness: Harness, tmp_path: Path
) -> None:
    nim = {
        "model_name": "meta/llama-3.2-1b-instruct",
        "backend": "nemo",
        "customization_enabled": True,
        "customizer_configs": {"target": "meta/llama-3.2-1b-instruct@2.0"},
    }
    job_id = finished_job(harness, nim)
    with pytest.raises(ConflictError, match=r"backend 'nemo'.*without --merged"):
        export_candidate(harness.repo, job_id, nim["model_name"], tmp_path / "merged", merged=True)
    assert not (tmp_path / "merged").exists()

    export_candidate(harness.repo, job_id, nim["model_name"], tmp_path / "adapter")
    card = (tmp_path / "adapter" / "README.md").read_text()
    assert "not on this machine" in card
    assert 'AutoModelForCausalLM.from_pretrained("meta/llama-3.2-1b-instruct"' in card


def test_a_local_base_model_that_is_missing_cannot_be_merged(harness: Harness, tmp_path: Path) -> None:
    job_id = finished_job(harness, {**LOCAL_NIM, "model_path": str(tmp_path / "gone.gguf")})
    with pytest.raises(BackendError, match=r"Cannot merge: Model .*gone\.gguf.* not found"):
        export_candidate(harness.repo, job_id, NAME, tmp_path / "merged", merged=True)
    result = export_candidate(harness.repo, job_id, NAME, tmp_path / "adapter")
    assert "not found on this machine" in (tmp_path / "adapter" / "README.md").read_text()
    assert result.facts["base_model"]["source"] is None


def test_a_merged_export_runs_the_merge_role_of_the_candidates_backend(
    harness: Harness, tmp_path: Path
) -> None:
    from flywheel.backends import BaseWeights, registry

    calls: list[tuple[str, Path | None, Path, str]] = []

    class FolderMerger:
        def __init__(self, model: str, cache_dir: Path | None) -> None:
            self.model, self.cache_dir = model, cache_dir

        def base_weights(self) -> BaseWeights:
            return BaseWeights(kind="hf_dir", path=f"/weights/{self.model}")

        def save_merged(self, adapter_dir: Path, out_dir: Path, *, dtype: str = "float32") -> None:
            calls.append((self.model, self.cache_dir, adapter_dir, dtype))
            (out_dir / "model.safetensors").write_bytes(b"merged")

    registry.register("folder", merge=lambda model, *, cache_dir, env: FolderMerger(model, cache_dir))
    try:
        nim = {
            "model_name": "acme/tiny",
            "backend": "folder",
            "model_path": "tiny-v2",
            "customization_enabled": True,
        }
        job_id = finished_job(harness, nim)
        result = export_candidate(
            harness.repo,
            job_id,
            "acme/tiny",
            tmp_path / "out",
            merged=True,
            dtype="bfloat16",
            cache_dir=tmp_path,
        )
    finally:
        registry._REGISTRY.pop("folder")
    assert calls == [("tiny-v2", tmp_path, adapter_dir_of(harness, job_id), "bfloat16")]
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == b"merged"
    assert result.facts["base_model"]["local"] is True
    assert result.facts["base_model"]["source"] == {
        "kind": "hf_dir",
        "path": "/weights/tiny-v2",
        "gguf_file": None,
    }


# ---------------------------------------------------------------------------------------------------- real model


def _greedy(model: Any, tokenizer: Any, messages: list[dict[str, Any]], max_new: int, eos: list[int]) -> str:
    """One answer with plain transformers: chat template, greedy, one prompt at a time (no padding)."""
    import torch

    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=max_new, do_sample=False, eos_token_id=eos)
    return str(tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))


def _stored_answers(harness_engine: Any, job_id: str, eval_type: str) -> dict[str, str | None]:
    from sqlalchemy import select

    from flywheel.store import evaluation_samples, evaluations

    with harness_engine.connect() as conn:
        rows = conn.execute(
            select(evaluation_samples.c.sample)
            .join(evaluations, evaluations.c.id == evaluation_samples.c.evaluation_id)
            .where(evaluations.c.job_id == job_id, evaluations.c.eval_type == eval_type)
            .order_by(evaluation_samples.c.position)
        )
        samples = [json.loads(row.sample) for row in rows]
    return {s["record_id"]: s["candidate"]["content"] for s in samples}


@pytest.mark.slow
def test_exported_adapter_and_merged_model_reproduce_the_jobs_answers(
    sqlite_url: str, home: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from flywheel.backends.local import release_models
    from flywheel.pipeline.datasets import read_jsonl
    from flywheel.pipeline.evaluate import candidate_requests
    from flywheel.service.jobs import ConfiguredBackends, JobRunner

    started = time.perf_counter()
    harness = Harness(sqlite_url, home)
    harness.ingest(classification_logs(40))
    config = job_config(
        nims=[{**LOCAL_NIM, "customizer_configs": {"max_seq_length": 96}}],
        data_split_config={"eval_size": 6, "val_ratio": 0.1, "min_total_records": 20, "random_seed": 3},
        training_config={"epochs": 1, "batch_size": 4, "max_steps": 3, "learning_rate": 0.001},
        lora_config={"adapter_dim": 4},
        evaluation_config={"max_new_tokens": 12},
    )
    job_id = harness.submit(config)
    # float32, not the automatic CPU choice: that choice is a timing race between bf16 and fp32 kernels, and the
    # reloads below must run the weights in the dtype the job's customized evaluation ran them in.
    backends = ConfiguredBackends(home, {"FLYWHEEL_DTYPE": "float32"})
    runner = JobRunner(harness.repo, home=home, backends=backends, env={})
    assert runner.run(job_id) == "completed", harness.repo.detail(job_id)
    ran = time.perf_counter()

    adapter = export_candidate(harness.repo, job_id, NAME, tmp_path / "adapter", cache_dir=backends.cache_dir)
    merged = export_candidate(
        harness.repo, job_id, NAME, tmp_path / "merged", merged=True, cache_dir=backends.cache_dir
    )
    release_models(force=True)
    exported = time.perf_counter()
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json"} <= {
        f.path for f in merged.files
    }

    # Three eval prompts, those where fine-tuning changed the answer first, so that the check below tells an
    # applied adapter from a missing one.
    customized = _stored_answers(harness.engine, job_id, "customized-eval")
    base = _stored_answers(harness.engine, job_id, "base-eval")
    chosen = sorted(customized, key=lambda rid: customized[rid] == base.get(rid))[:3]
    assert any(customized[rid] != base.get(rid) for rid in chosen), (customized, base)
    (eval_path,) = [d["path"] for d in harness.repo.detail(job_id)["datasets"] if "-eval-" in d["name"]]
    requests = {r.request_id: r for r in candidate_requests(read_jsonl(Path(eval_path)))}
    expected = [customized[rid] for rid in chosen]
    eos = GenerationConfig.from_pretrained(merged.out_dir).eos_token_id  # the tokens the engine stops at

    tokenizer = AutoTokenizer.from_pretrained(merged.out_dir)
    model = AutoModelForCausalLM.from_pretrained(merged.out_dir, dtype="float32")
    merged_answers = [_greedy(model, tokenizer, requests[rid].messages, 12, eos) for rid in chosen]
    del model
    merged_done = time.perf_counter()

    # The adapter, loaded exactly as its model card says (base from the packaged GGUF, PeftModel on top).
    card = (adapter.out_dir / "README.md").read_text()
    snippet = card.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    adapter_answers = [
        _greedy(namespace["model"], namespace["tokenizer"], requests[rid].messages, 12, eos) for rid in chosen
    ]
    finished = time.perf_counter()

    print(
        f"\njob {ran - started:.1f}s, exports {exported - ran:.1f}s, merged reload+answers "
        f"{merged_done - exported:.1f}s, adapter reload (card snippet)+answers {finished - merged_done:.1f}s; "
        f"stored customized answers {expected}, base answers {[base.get(rid) for rid in chosen]}"
    )
    assert merged_answers == expected
    assert adapter_answers == expected
    harness.engine.dispose()
