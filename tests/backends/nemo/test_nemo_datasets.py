"""Datasets: namespaces in both stores, files in the Data Store through ``huggingface_hub``, registered in the
Entity Store — against the platform emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends.nemo.emulator import FakeClock, NemoEmulator
from flywheel.backends.nemo import DatasetRef, NemoDatasets, PlatformClient, PlatformError

NS = "flywheel-test"
TRAIN = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
VAL = b'{"messages": [{"role": "user", "content": "yo"}, {"role": "assistant", "content": "hey"}]}\n'


def test_upload_creates_both_namespaces_the_repo_and_the_registration(
    emu: NemoEmulator, client: PlatformClient
) -> None:
    ref = NemoDatasets(client).upload(
        "flywheel-train-w-1",
        {"training/train_data.jsonl": TRAIN, "validation/val_data.jsonl": VAL.decode()},
        description="train + val",
    )
    assert ref == DatasetRef(NS, "flywheel-train-w-1")
    assert ref.files_url == f"hf://datasets/{NS}/flywheel-train-w-1"
    assert NS in emu.namespaces and NS in emu.datastore_namespaces
    assert emu.repo_files(NS, ref.name) == {
        "training/train_data.jsonl": TRAIN,
        "validation/val_data.jsonl": VAL,
    }
    registered = emu.datasets[(NS, ref.name)]
    assert registered["files_url"] == ref.files_url and registered["description"] == "train + val"
    # Both files arrived in one commit; the Data Store namespace was created with the form field it expects.
    assert emu.created["commit"] == 1
    [datastore_ns] = emu.requests_to("POST", r"/datastore/v1/datastore/namespaces")
    assert datastore_ns.body == f"namespace={NS}".encode()


def test_a_repeated_upload_reuses_what_exists_and_registers_nothing_twice(
    emu: NemoEmulator, client: PlatformClient
) -> None:
    NemoDatasets(client).upload("d", {"eval_data.jsonl": TRAIN})
    NemoDatasets(client).upload(
        "d", {"eval_data.jsonl": TRAIN}
    )  # e.g. after a crash: a new instance, same data
    assert emu.created["namespace"] == 1 and emu.created["datastore_namespace"] == 1
    assert emu.created["repo"] == 1 and emu.created["dataset"] == 1
    assert emu.requests_to("PATCH", r"/v1/datasets/.*") == []  # unchanged registration is left alone


def test_a_registration_that_differs_is_brought_up_to_date(emu: NemoEmulator, client: PlatformClient) -> None:
    datasets = NemoDatasets(client)
    datasets.ensure_namespace()
    client.sdk.datasets.create(name="d", namespace=NS, files_url="hf://datasets/elsewhere/d")
    datasets.upload("d", {"eval_data.jsonl": TRAIN}, description="eval")
    assert emu.datasets[(NS, "d")]["files_url"] == f"hf://datasets/{NS}/d"
    assert emu.datasets[(NS, "d")]["description"] == "eval"
    assert len(emu.requests_to("PATCH", rf"/v1/datasets/{NS}/d")) == 1


def test_a_local_file_is_uploaded_by_path(emu: NemoEmulator, client: PlatformClient, tmp_path: Path) -> None:
    local = tmp_path / "eval_data.jsonl"
    local.write_bytes(TRAIN * 3)
    NemoDatasets(client).upload("d", {"eval_data.jsonl": local})
    assert emu.repo_files(NS, "d") == {"eval_data.jsonl": TRAIN * 3}


def test_a_passing_server_error_is_retried_with_backoff(
    emu: NemoEmulator, client: PlatformClient, clock: FakeClock
) -> None:
    emu.fail("POST", r"/datastore/v1/datastore/namespaces", 503, "Service Unavailable", times=1)
    emu.fail("POST", r"/datastore/v1/hf/api/datasets/.*/commit/main", 502, "Bad Gateway", times=1)
    NemoDatasets(client).upload("d", {"eval_data.jsonl": TRAIN})
    assert emu.repo_files(NS, "d") == {"eval_data.jsonl": TRAIN}
    assert len(clock.sleeps) == 2 and all(0 < s <= 0.5 for s in clock.sleeps)


def test_a_refusal_names_the_call_the_status_and_the_platforms_detail(
    emu: NemoEmulator, client: PlatformClient
) -> None:
    emu.fail("POST", r"/v1/datasets", 403, "namespace is read-only", times=None)
    with pytest.raises(PlatformError) as caught:
        NemoDatasets(client).upload("d", {"eval_data.jsonl": TRAIN})
    message = str(caught.value)
    assert caught.value.status_code == 403
    assert (
        f"register dataset '{NS}/d'" in message
        and "HTTP 403" in message
        and "namespace is read-only" in message
    )
    assert len(emu.requests_to("POST", r"/v1/datasets")) == 1  # a 4xx is not retried


def test_an_unreachable_platform_is_a_platform_error_that_says_so(client: PlatformClient) -> None:
    from flywheel.backends.nemo import PlatformEndpoints

    dead = PlatformClient(
        PlatformEndpoints("http://127.0.0.1:9", "http://127.0.0.1:9", "http://127.0.0.1:9"), max_retries=0
    )
    with pytest.raises(PlatformError, match="could not connect") as caught:
        NemoDatasets(dead).ensure_namespace()
    assert caught.value.status_code is None
    dead.close()


def test_delete_removes_the_files_and_the_registration_and_tolerates_what_is_gone(
    emu: NemoEmulator, client: PlatformClient
) -> None:
    datasets = NemoDatasets(client)
    ref = datasets.upload("d", {"eval_data.jsonl": TRAIN})
    datasets.delete(ref)
    assert (NS, "d") not in emu.repos and (NS, "d") not in emu.datasets
    datasets.delete(ref)  # already gone: nothing to do, no error
