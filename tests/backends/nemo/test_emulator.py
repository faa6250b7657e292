"""The NeMo platform emulator behaves like the platform's documentation says the platform does.

The backend's tests are only as good as the emulator, so its status machines, error bodies, conflicts, pagination,
faults and the Hugging Face upload path are checked here with the clients the backend uses: the official SDK,
``huggingface_hub`` and plain httpx.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError
from nemo_microservices import ConflictError, NeMoMicroservices, NotFoundError, UnprocessableEntityError

from backends.nemo.emulator import (
    EmulatorURLs,
    NemoEmulator,
    Phase,
    fails_after,
    stalls,
    trains,
    trains_then_fails,
)

NS = "team"
MODEL = "meta/llama-3.2-1b-instruct"
NIM_CONFIG = {
    "model": MODEL,
    "nim_deployment": {
        "image_name": f"nvcr.io/nim/{MODEL}",
        "image_tag": "1.8.3",
        "gpu": 1,
        "pvc_size": "25Gi",
    },
}


@pytest.fixture
def sdk(urls: EmulatorURLs) -> NeMoMicroservices:
    """Why: the official client, retries off, so each call is one request and its error is the platform's."""
    return NeMoMicroservices(base_url=urls.nemo_base_url, max_retries=0)


def _hf(urls: EmulatorURLs) -> HfApi:
    return HfApi(endpoint=f"{urls.datastore_base_url}/v1/hf", token="nothing")


def _dataset_with_training_file(sdk: NeMoMicroservices, urls: EmulatorURLs, records: int = 8) -> None:
    sdk.namespaces.create(id=NS)
    httpx.post(
        f"{urls.datastore_base_url}/v1/datastore/namespaces", data={"namespace": NS}
    ).raise_for_status()
    api = _hf(urls)
    api.create_repo(f"{NS}/train", repo_type="dataset")
    lines = "\n".join(json.dumps({"messages": [{"role": "user", "content": str(i)}]}) for i in range(records))
    api.upload_file(
        path_or_fileobj=lines.encode(),
        path_in_repo="training/train_data.jsonl",
        repo_id=f"{NS}/train",
        repo_type="dataset",
    )
    sdk.datasets.create(name="train", namespace=NS, files_url=f"hf://datasets/{NS}/train")
    sdk.customization.configs.create(
        name="llama@v1.0.0+dfw",
        namespace=NS,
        target=f"{MODEL}@2.0",
        max_seq_length=4096,
        training_options=[
            {"training_type": "sft", "finetuning_type": "lora", "num_gpus": 1, "micro_batch_size": 1}
        ],
    )


def _job(sdk: NeMoMicroservices, name: str = "job", epochs: int = 2, batch_size: int = 4) -> Any:
    return sdk.customization.jobs.create(
        name=name,
        output_model=f"{NS}/customized-llama",
        config=f"{NS}/llama@v1.0.0+dfw",
        dataset={"name": "train", "namespace": NS},
        hyperparameters={
            "training_type": "sft",
            "finetuning_type": "lora",
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": 1e-4,
            "lora": {"adapter_dim": 32, "adapter_dropout": 0.1},
        },
    )


# ---------------------------------------------------------------------------------------------------- deployments


def test_a_deployment_walks_pending_to_ready_one_read_at_a_time(
    emu: NemoEmulator, sdk: NeMoMicroservices
) -> None:
    created = sdk.deployment.model_deployments.create(name="llama", namespace=NS, config=NIM_CONFIG)
    assert created.status_details.status == "pending" and created.deployed is False
    seen = [sdk.deployment.model_deployments.retrieve("llama", namespace=NS) for _ in range(3)]
    assert [d.status_details.status for d in seen] == ["pending", "ready", "ready"]
    assert seen[-1].deployed is True and seen[-1].models == [MODEL]
    assert emu.created["deployment"] == 1


def test_a_deployment_that_exists_is_a_409_with_the_platforms_detail(sdk: NeMoMicroservices) -> None:
    sdk.deployment.model_deployments.create(name="llama", namespace=NS, config=NIM_CONFIG)
    with pytest.raises(ConflictError) as caught:
        sdk.deployment.model_deployments.create(name="llama", namespace=NS, config=NIM_CONFIG)
    assert caught.value.body == {"detail": "model deployment already exists"}


def test_a_deployment_can_be_scripted_to_fail_or_to_stall(emu: NemoEmulator, sdk: NeMoMicroservices) -> None:
    emu.script("deployment", fails_after(1, "ImagePullBackOff"), name="broken")
    emu.script("deployment", stalls("pending"), name="stuck")
    for name in ("broken", "stuck"):
        sdk.deployment.model_deployments.create(name=name, namespace=NS, config=NIM_CONFIG)
    broken = [
        sdk.deployment.model_deployments.retrieve("broken", namespace=NS).status_details for _ in range(2)
    ]
    assert [d.status for d in broken] == ["failed", "failed"] and broken[0].description == "ImagePullBackOff"
    stuck = {
        sdk.deployment.model_deployments.retrieve("stuck", namespace=NS).status_details.status
        for _ in range(20)
    }
    assert stuck == {"pending"}


def test_a_ready_deployment_is_served_by_the_nim_proxy_until_it_is_deleted(
    emu: NemoEmulator, sdk: NeMoMicroservices, urls: EmulatorURLs
) -> None:
    sdk.deployment.model_deployments.create(name="llama", namespace=NS, config=NIM_CONFIG)
    assert httpx.get(f"{urls.nim_base_url}/v1/models").json()["data"] == []
    emu.advance(2)  # the clock the test controls, without reads
    assert [m["id"] for m in httpx.get(f"{urls.nim_base_url}/v1/models").json()["data"]] == [MODEL]
    sdk.deployment.model_deployments.delete("llama", namespace=NS)
    assert httpx.get(f"{urls.nim_base_url}/v1/models").json()["data"] == []
    with pytest.raises(NotFoundError):
        sdk.deployment.model_deployments.retrieve("llama", namespace=NS)


def test_a_nim_deployment_without_its_image_tag_is_a_422_in_fastapis_shape(sdk: NeMoMicroservices) -> None:
    config = {"model": MODEL, "nim_deployment": {"image_name": "x", "gpu": 1}}
    with pytest.raises(UnprocessableEntityError) as caught:
        sdk.deployment.model_deployments.create(name="llama", namespace=NS, config=config)
    assert caught.value.body["detail"][0]["loc"] == ["body", "config", "nim_deployment", "image_tag"]


# ---------------------------------------------------------------------------------------------------- customization


def test_a_customization_job_reports_progress_and_loss_curves_as_the_platform_does(
    emu: NemoEmulator, sdk: NeMoMicroservices, urls: EmulatorURLs
) -> None:
    _dataset_with_training_file(sdk, urls, records=8)
    emu.script("customization", trains(running_reads=4))
    job = _job(sdk, epochs=2, batch_size=4)  # 8 records / 4 = 2 steps per epoch, 4 steps in all
    assert job.id.startswith("cust-") and job.status == "created"
    assert job.output_model == f"{NS}/customized-llama@{job.id}"
    reads = [sdk.customization.jobs.status(job.id) for _ in range(8)]
    assert [r.status for r in reads] == [
        "pending",
        "running",
        "running",
        "running",
        "running",
        *["completed"] * 3,
    ]
    assert [r.steps_completed for r in reads[1:6]] == [0, 1, 2, 3, 4]
    assert [r.percentage_done for r in reads[1:6]] == [
        0.0,
        0.0,
        50.0,
        50.0,
        100.0,
    ]  # completed epochs / epochs
    final = reads[-1]
    assert final.epochs_completed == 2 and final.steps_per_epoch == 2
    assert final.metrics is not None and final.metrics.keys == ["train_loss", "val_loss"]
    train = final.metrics.metrics.train_loss or []
    val = final.metrics.metrics.val_loss or []
    assert [p.step for p in train] == [1, 2, 3, 4] and [p.step for p in val] == [2, 4]
    assert train[0].value > train[-1].value > 0  # the loss went down
    assert final.val_loss == min(p.value or 0 for p in val) and final.best_epoch == 2
    assert [log.message for log in final.status_logs or []] == ["Created", "Pending", "Running", "Completed"]
    assert sdk.customization.jobs.retrieve(job.id).status == "completed"


def test_a_finished_customizations_model_is_registered_and_then_synced_to_the_nim(
    emu: NemoEmulator, sdk: NeMoMicroservices, urls: EmulatorURLs
) -> None:
    _dataset_with_training_file(sdk, urls)
    emu.script("customization", trains(running_reads=1, queued_reads=1))
    job = _job(sdk)
    emu.advance(5)
    name = job.output_model.split("/", 1)[1]
    assert sdk.models.retrieve(name, namespace=NS).name == name
    listed = [[m["id"] for m in httpx.get(f"{urls.nim_base_url}/v1/models").json()["data"]] for _ in range(2)]
    assert listed == [[], [job.output_model]]  # model_sync_reads = 1


def test_a_customization_job_can_fail_with_its_reason_in_the_status_logs(
    emu: NemoEmulator, sdk: NeMoMicroservices, urls: EmulatorURLs
) -> None:
    _dataset_with_training_file(sdk, urls)
    emu.script("customization", trains_then_fails(2, detail="NotEnoughResources"))
    job = _job(sdk)
    reads = [sdk.customization.jobs.status(job.id) for _ in range(4)]
    assert [r.status for r in reads] == ["running", "running", "failed", "failed"]
    last = (reads[-1].status_logs or [])[-1]
    assert last.message == "NotEnoughResources" and last.detail == "NotEnoughResources"


def test_cancel_goes_through_cancelling_to_cancelled_and_a_finished_job_cannot_be_cancelled(
    emu: NemoEmulator, sdk: NeMoMicroservices, urls: EmulatorURLs
) -> None:
    _dataset_with_training_file(sdk, urls)
    emu.script("customization", [Phase("created", 1), Phase("running", None)])  # runs until cancelled
    job = _job(sdk)
    sdk.customization.jobs.status(job.id)
    assert sdk.customization.jobs.cancel(job.id).status == "cancelling"
    assert [sdk.customization.jobs.status(job.id).status for _ in range(2)] == ["cancelled", "cancelled"]
    assert emu.created["customization_cancel"] == 1
    with pytest.raises(ConflictError) as caught:
        sdk.customization.jobs.cancel(job.id)
    assert "cancelled" in caught.value.body["detail"]


def test_a_job_on_a_missing_config_or_dataset_is_a_404_and_creates_nothing(
    emu: NemoEmulator, sdk: NeMoMicroservices, urls: EmulatorURLs
) -> None:
    _dataset_with_training_file(sdk, urls)
    hyper = {"finetuning_type": "lora"}
    with pytest.raises(NotFoundError, match="config"):
        sdk.customization.jobs.create(
            config=f"{NS}/nope", dataset={"name": "train", "namespace": NS}, hyperparameters=hyper
        )
    with pytest.raises(NotFoundError, match="Dataset"):
        sdk.customization.jobs.create(
            config=f"{NS}/llama@v1.0.0+dfw", dataset={"name": "nope", "namespace": NS}, hyperparameters=hyper
        )
    assert emu.created["customization_job"] == 0


def test_lists_are_paginated_with_the_platforms_pagination_block(
    emu: NemoEmulator, sdk: NeMoMicroservices, urls: EmulatorURLs
) -> None:
    _dataset_with_training_file(sdk, urls)
    ids = [_job(sdk, name=f"job-{i}").id for i in range(5)]
    first = sdk.customization.jobs.list(page=1, page_size=2)
    assert [j.id for j in first.data] == ids[:2]
    assert (
        first.pagination is not None
        and first.pagination.total_pages == 3
        and first.pagination.total_results == 5
    )
    assert [j.id for j in first.iter_pages().__next__().data] == ids[:2]
    assert [
        j.id for j in sdk.customization.jobs.list(page_size=2)
    ] == ids  # the SDK's auto-pagination walks it
    raw = httpx.get(f"{urls.nemo_base_url}/v1/customization/jobs", params={"page": 0})
    assert raw.status_code == 422 and raw.json()["detail"][0]["loc"] == ["query", "page"]
    assert emu.created["customization_job"] == 5


# ---------------------------------------------------------------------------------------------------- entity store


def test_entity_store_conflicts_and_missing_entities_answer_409_and_404_with_a_detail(
    sdk: NeMoMicroservices, urls: EmulatorURLs
) -> None:
    sdk.namespaces.create(id=NS)
    with pytest.raises(ConflictError) as conflict:
        sdk.namespaces.create(id=NS)
    assert conflict.value.body == {"detail": f"Namespace '{NS}' already exists."}
    sdk.datasets.create(name="d", namespace=NS, files_url=f"hf://datasets/{NS}/d")
    with pytest.raises(ConflictError):
        sdk.datasets.create(name="d", namespace=NS, files_url=f"hf://datasets/{NS}/d")
    updated = sdk.datasets.update("d", namespace=NS, description="eval set")
    assert updated.description == "eval set" and updated.files_url == f"hf://datasets/{NS}/d"
    with pytest.raises(NotFoundError) as missing:
        sdk.datasets.retrieve("other", namespace=NS)
    assert missing.value.body == {"detail": f"Dataset '{NS}/other' not found."}
    with pytest.raises(NotFoundError):
        sdk.datasets.create(name="d", namespace="no-such-namespace", files_url="hf://datasets/x/d")


# ---------------------------------------------------------------------------------------------------- data store


def test_huggingface_hub_creates_a_dataset_repo_and_uploads_files_to_the_data_store(
    emu: NemoEmulator, urls: EmulatorURLs
) -> None:
    httpx.post(
        f"{urls.datastore_base_url}/v1/datastore/namespaces", data={"namespace": NS}
    ).raise_for_status()
    api = _hf(urls)
    url = api.create_repo(f"{NS}/ds", repo_type="dataset")
    assert url.repo_id == f"{NS}/ds" and url.repo_type == "dataset"
    assert api.create_repo(f"{NS}/ds", repo_type="dataset", exist_ok=True).repo_id == f"{NS}/ds"
    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_repo(f"{NS}/ds", repo_type="dataset")
    assert conflict.value.response.status_code == 409
    info = api.upload_file(
        path_or_fileobj=b'{"a": 1}\n', path_in_repo="eval_data.jsonl", repo_id=f"{NS}/ds", repo_type="dataset"
    )
    assert "/commit/" in info
    commit = api.create_commit(
        f"{NS}/ds",
        operations=[
            CommitOperationAdd("training/train_data.jsonl", b'{"b": 2}\n'),
            CommitOperationAdd("validation/val_data.jsonl", b'{"c": 3}\n'),
        ],
        commit_message="train and val",
        repo_type="dataset",
    )
    assert commit.oid != info.oid
    assert emu.repo_files(NS, "ds") == {
        "eval_data.jsonl": b'{"a": 1}\n',
        "training/train_data.jsonl": b'{"b": 2}\n',
        "validation/val_data.jsonl": b'{"c": 3}\n',
    }
    # What HfApi sent: preupload (upload modes) then an NDJSON commit, per commit.
    assert len(emu.requests_to("POST", rf"/datastore/v1/hf/api/datasets/{NS}/ds/preupload/main")) == 2
    commits = emu.requests_to("POST", rf"/datastore/v1/hf/api/datasets/{NS}/ds/commit/main")
    assert len(commits) == 2 and commits[0].headers["content-type"] == "application/x-ndjson"
    assert emu.created["repo"] == 1 and emu.created["commit"] == 2
    api.delete_repo(f"{NS}/ds", repo_type="dataset")
    assert (NS, "ds") not in emu.repos


def test_a_repo_in_a_namespace_the_data_store_lacks_is_refused(urls: EmulatorURLs) -> None:
    with pytest.raises(HfHubHTTPError) as caught:
        _hf(urls).create_repo(f"{NS}/ds", repo_type="dataset")
    assert caught.value.response.status_code == 404


def test_data_store_namespaces_take_a_form_field_and_say_409_when_they_exist(urls: EmulatorURLs) -> None:
    url = f"{urls.datastore_base_url}/v1/datastore/namespaces"
    assert httpx.post(url, data={"namespace": NS}).status_code == 201
    again = httpx.post(url, data={"namespace": NS})
    assert again.status_code == 409 and "already exists" in again.json()["detail"]
    assert httpx.get(f"{url}/{NS}").json()["namespace"] == NS
    assert httpx.post(url, data={}).status_code == 422


# ---------------------------------------------------------------------------------------------------- NIM proxy


def test_the_nim_answers_chat_for_served_models_only_and_can_be_scripted(
    emu: NemoEmulator, urls: EmulatorURLs
) -> None:
    emu.nim_models.add(MODEL)
    url = f"{urls.nim_base_url}/v1/chat/completions"
    body = {"model": MODEL, "messages": [{"role": "user", "content": "say hello world"}]}
    answer = httpx.post(url, json=body).json()
    assert (
        answer["choices"][0]["message"]["content"] == "say hello world"
        and answer["usage"]["prompt_tokens"] == 3
    )
    emu.chat_script = lambda request: {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "[[[x]]]"}}]
    }
    assert httpx.post(url, json=body).json()["choices"][0]["message"]["content"] == "[[[x]]]"
    unknown = httpx.post(url, json={**body, "model": "other/model"})
    assert unknown.status_code == 404 and unknown.json()["object"] == "error"


def test_the_nim_embeds_deterministically_and_asks_asymmetric_models_for_input_type(
    emu: NemoEmulator, urls: EmulatorURLs
) -> None:
    emb = "nvidia/llama-3.2-nv-embedqa-1b-v2"
    emu.nim_models.add(emb)
    emu.asymmetric_embedding_models.add(emb)
    url = f"{urls.nim_base_url}/v1/embeddings"
    missing = httpx.post(url, json={"model": emb, "input": ["a"]})
    assert missing.status_code == 400 and "input_type" in missing.json()["message"]
    one = httpx.post(url, json={"model": emb, "input": ["a", "b"], "input_type": "query"}).json()["data"]
    two = httpx.post(url, json={"model": emb, "input": ["b"], "input_type": "query"}).json()["data"]
    assert [d["index"] for d in one] == [0, 1] and one[1]["embedding"] == two[0]["embedding"]


# ---------------------------------------------------------------------------------------------------- faults, auth


def test_a_fault_answers_its_error_the_given_number_of_times_then_the_route_works(
    emu: NemoEmulator, sdk: NeMoMicroservices
) -> None:
    fault = emu.fail("POST", r"/v1/namespaces", 503, "Service Unavailable", times=2)
    for _ in range(2):
        with pytest.raises(Exception) as caught:
            sdk.namespaces.create(id=NS)
        assert getattr(caught.value, "status_code", None) == 503
    assert sdk.namespaces.create(id=NS).id == NS
    assert fault.hits == 2 and emu.created["namespace"] == 1


def test_a_slow_route_answers_late(emu: NemoEmulator, urls: EmulatorURLs) -> None:
    emu.slow("GET", r"/nim/v1/models", 0.3, times=1)
    started = time.perf_counter()
    assert httpx.get(f"{urls.nim_base_url}/v1/models").status_code == 200
    assert time.perf_counter() - started >= 0.3
    started = time.perf_counter()
    httpx.get(f"{urls.nim_base_url}/v1/models")
    assert time.perf_counter() - started < 0.3


def test_routes_demand_their_familys_token_when_one_is_set(emu: NemoEmulator, urls: EmulatorURLs) -> None:
    emu.tokens.update(nemo="platform-key", hf="hf-token")
    assert httpx.get(f"{urls.nemo_base_url}/v1/namespaces").status_code == 401
    ok = httpx.get(f"{urls.nemo_base_url}/v1/namespaces", headers={"Authorization": "Bearer platform-key"})
    assert ok.status_code == 200
    assert httpx.post(f"{urls.datastore_base_url}/v1/hf/api/repos/create", json={}).status_code == 401
    assert httpx.get(f"{urls.nim_base_url}/v1/models").status_code == 200  # no NIM token set
    assert emu.requests[0].headers.get("authorization") is None
