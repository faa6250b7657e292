"""Deployment: base NIMs through the Deployment Manager — ready at ``ready``, a ``failed`` one ends the wait at
once, a stalled one times out and leaves nothing deployed, an existing one is reused and never shut down."""

from __future__ import annotations

from typing import Any

import pytest

from backends.nemo.emulator import FakeClock, NemoEmulator, Phase, fails_after, ready_after, stalls
from flywheel.backends import DeploymentBackend
from flywheel.backends.nemo import DeploymentProgress, DeploymentSpec, NimDeployment, PlatformClient
from flywheel.config import NIMConfig
from flywheel.errors import BackendError, ConfigError, JobCancelled

NS = "flywheel-test"
MODEL = "meta/llama-3.2-1b-instruct"
NAME = "meta-llama-3.2-1b-instruct"
NIM = NIMConfig(model_name=MODEL, backend="nemo", tag="1.8.3", gpus=1, pvc_size="25Gi", context_length=8192)


def _deployment(client: PlatformClient, clock: FakeClock, **options: Any) -> NimDeployment:
    options.setdefault("poll_interval_s", 5.0)
    options.setdefault("stall_timeout_s", 60.0)
    return NimDeployment(client, DeploymentSpec.from_nim(NIM, NS), clock=clock, sleep=clock.sleep, **options)


def test_deploy_creates_the_nim_from_the_config_and_waits_until_it_is_ready_and_served(
    emu: NemoEmulator, client: PlatformClient, clock: FakeClock
) -> None:
    emu.script("deployment", [Phase("created", 1), Phase("pending", 2), Phase("ready", None)])
    progress: list[DeploymentProgress] = []
    nim = _deployment(client, clock)
    assert isinstance(nim, DeploymentBackend)
    assert nim.deploy(on_progress=progress.append) == f"{client.endpoints.nim_base_url}/v1"
    [create] = emu.requests_to("POST", r"/v1/deployment/model-deployments")
    assert create.json() == {
        "name": NAME,
        "namespace": NS,
        "config": {
            "model": MODEL,
            "nim_deployment": {
                "image_name": f"nvcr.io/nim/{MODEL}",
                "image_tag": "1.8.3",
                "gpu": 1,
                "pvc_size": "25Gi",
                "additional_envs": {"NIM_GUIDED_DECODING_BACKEND": "outlines"},
            },
        },
    }
    assert [p.status for p in progress if p.phase == "deploying"] == [
        "created",
        "pending",
        "pending",
        "ready",
    ]
    assert [p.elapsed_s for p in progress if p.phase == "deploying"] == [0.0, 5.0, 10.0, 15.0]
    assert MODEL in emu.served_models() and nim.started_by_flywheel
    assert emu.created["deployment"] == 1


def test_deploy_waits_for_the_model_to_reach_the_nim_proxys_list(
    emu: NemoEmulator, client: PlatformClient, clock: FakeClock
) -> None:
    emu.script("deployment", ready_after(1))
    emu.fail("GET", r"/nim/v1/models", 503, "proxy warming up", times=1)  # the proxy is not there at first
    nim = _deployment(client, clock)
    nim.deploy()
    assert len(emu.requests_to("GET", r"/nim/v1/models")) == 2  # one 503 (retried), then the model was listed


def test_a_deployment_that_never_becomes_ready_times_out_and_leaves_nothing_deployed(
    emu: NemoEmulator, client: PlatformClient, clock: FakeClock
) -> None:
    emu.script("deployment", stalls("pending"))
    nim = _deployment(client, clock, stall_timeout_s=60.0)
    with pytest.raises(BackendError, match="made no progress for 60s") as caught:
        nim.deploy()
    assert NAME in str(caught.value) and MODEL in str(caught.value)
    assert clock.now == 60.0  # gave up at the stall timeout, not before, not long after
    assert emu.deployments == {} and emu.created["deployment_deleted"] == 1


def test_a_status_change_resets_the_stall_timer_but_an_overall_timeout_still_ends_the_wait(
    emu: NemoEmulator, client: PlatformClient, clock: FakeClock
) -> None:
    # Each status lasts 10 reads (50 s): under the 60 s stall timeout, so only the overall timeout stops it.
    emu.script(
        "deployment", [Phase(s, 10) for s in ("created", "pending", "running", "pending")] + stalls("x")
    )
    nim = _deployment(client, clock, stall_timeout_s=60.0, timeout_s=180.0)
    with pytest.raises(BackendError, match="did not finish within 180s"):
        nim.deploy()
    assert clock.now == 180.0 and emu.deployments == {}


def test_a_failed_deployment_ends_the_wait_at_once_with_the_platforms_reason(
    emu: NemoEmulator, client: PlatformClient, clock: FakeClock
) -> None:
    emu.script("deployment", fails_after(1, "ImagePullBackOff: nvcr.io/nim/meta/llama-3.2-1b-instruct:1.8.3"))
    nim = _deployment(client, clock, stall_timeout_s=3600.0)
    with pytest.raises(BackendError, match="ended with status 'failed': ImagePullBackOff"):
        nim.deploy()
    assert clock.now == 5.0  # one poll after the create, not an hour
    assert emu.deployments == {}  # it was ours: shut down


def test_an_existing_deployment_is_reused_and_never_shut_down(
    emu: NemoEmulator, client: PlatformClient, clock: FakeClock
) -> None:
    emu.add_deployment(NS, NAME, MODEL, status="ready")
    nim = _deployment(client, clock)
    nim.deploy()
    nim.undeploy()
    assert emu.created["deployment"] == 0 and emu.created["deployment_deleted"] == 0
    assert (NS, NAME) in emu.deployments and not nim.started_by_flywheel
    assert emu.requests_to("DELETE", r"/v1/deployment/model-deployments/.*") == []


def test_an_existing_deployment_that_fails_while_we_wait_is_still_not_ours_to_delete(
    emu: NemoEmulator, client: PlatformClient, clock: FakeClock
) -> None:
    emu.add_deployment(NS, NAME, MODEL, status="pending")
    emu.deployments[(NS, NAME)].lifecycle.phases[:] = fails_after(2)  # pending at our first look, then failed
    with pytest.raises(BackendError, match="ended with status 'failed'"):
        _deployment(client, clock).deploy()
    assert (NS, NAME) in emu.deployments


def test_an_existing_failed_deployment_that_is_not_ours_is_refused_and_left_alone(
    emu: NemoEmulator, client: PlatformClient, clock: FakeClock
) -> None:
    emu.add_deployment(NS, NAME, MODEL, status="failed")
    with pytest.raises(BackendError, match="did not start it") as caught:
        _deployment(client, clock).deploy()
    assert f"DELETE /v1/deployment/model-deployments/{NS}/{NAME}" in str(caught.value)
    assert (NS, NAME) in emu.deployments and emu.created["deployment"] == 0


def test_a_deployment_created_meanwhile_is_reused_even_when_the_platform_says_so_with_a_500(
    emu: NemoEmulator, client: PlatformClient, clock: FakeClock
) -> None:
    emu.deployment_conflict_status = 500  # what the reference saw the Deployment Manager answer
    emu.fail("GET", rf"/v1/deployment/model-deployments/{NS}/{NAME}", 404, "not found", times=1)
    emu.add_deployment(NS, NAME, MODEL, status="ready")  # appears between our look and our create
    nim = _deployment(client, clock)
    nim.deploy()
    nim.undeploy()
    assert not nim.started_by_flywheel and (NS, NAME) in emu.deployments


def test_undeploy_shuts_down_what_deploy_started_and_waits_until_it_is_gone(
    emu: NemoEmulator, client: PlatformClient, clock: FakeClock
) -> None:
    started: list[NimDeployment] = []
    nim = _deployment(client, clock)
    nim.deploy(on_started=started.append)
    assert started == [nim]
    nim.undeploy()
    assert emu.deployments == {} and MODEL not in emu.served_models()
    assert len(emu.requests_to("DELETE", rf"/v1/deployment/model-deployments/{NS}/{NAME}")) == 1


def test_on_started_hears_of_the_creation_before_the_wait_so_a_crash_can_be_cleaned_up(
    emu: NemoEmulator, client: PlatformClient, clock: FakeClock
) -> None:
    emu.script("deployment", stalls("pending"))
    polls_when_started: list[int] = []

    def record(nim: NimDeployment) -> None:
        polls_when_started.append(
            len(emu.requests_to("GET", rf"/v1/deployment/model-deployments/{NS}/{NAME}"))
        )

    with pytest.raises(BackendError):
        _deployment(client, clock).deploy(on_started=record)
    assert polls_when_started == [1]  # the look before the create only
    # A later run told that flywheel started it (e.g. from the step's record) may shut it down.
    emu.add_deployment(NS, NAME, MODEL, status="ready")
    _deployment(client, clock, started_by_flywheel=True).undeploy()
    assert emu.deployments == {}


def test_cancel_stops_the_wait_and_shuts_down_what_was_started(
    emu: NemoEmulator, client: PlatformClient, clock: FakeClock
) -> None:
    emu.script("deployment", stalls("pending"))
    with pytest.raises(JobCancelled):
        _deployment(client, clock).deploy(should_stop=lambda: clock.now >= 10.0)
    assert clock.now == 10.0 and emu.deployments == {}


def test_a_worker_that_stops_without_a_cancel_leaves_the_deployment_it_started_coming_up(
    emu: NemoEmulator, client: PlatformClient, clock: FakeClock
) -> None:
    from flywheel.backends import StopCheck

    emu.script("deployment", stalls("pending"))
    only_the_worker = StopCheck(stop=lambda: clock.now >= 10.0, cancelled=lambda: False)
    with pytest.raises(JobCancelled):
        _deployment(client, clock).deploy(should_stop=only_the_worker)
    assert list(emu.deployments) == [(NS, NAME)]  # the worker that resumes the job adopts it
    with pytest.raises(JobCancelled):
        _deployment(client, clock).deploy(should_stop=StopCheck(lambda: True, cancelled=lambda: True))
    assert list(emu.deployments) == [(NS, NAME)]  # a run that did not start it never removes it


def test_a_candidate_without_a_tag_or_gpus_is_a_config_error_naming_the_keys() -> None:
    with pytest.raises(ConfigError) as caught:
        DeploymentSpec.from_nim(NIMConfig(model_name=MODEL, backend="nemo"), NS)
    assert [key for key, _ in caught.value.problems] == ["nims[].tag", "nims[].gpus"]


def test_a_custom_registry_names_the_image() -> None:
    nim = NIMConfig(model_name=MODEL, backend="nemo", tag="2.0", gpus=2, registry_base="registry.local/nim/")
    spec = DeploymentSpec.from_nim(nim, NS)
    assert (
        spec.image_name == f"registry.local/nim/{MODEL}"
        and "pvc_size" not in spec.request_body()["config"]["nim_deployment"]
    )
