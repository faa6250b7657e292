"""Jobs whose candidates run on the NeMo platform (the ``nemo`` backend), against the platform emulator.

The platform's URLs come only from the configuration's ``nmp_config``, as in a blueprint ``config.yaml``: the
environment the job sees holds keys and nothing that says where the platform is.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backends.nemo.emulator import EmulatorURLs, NemoEmulator, chat_completion, serve_emulator
from flywheel.config import FlywheelConfig
from flywheel.service.jobs import ConfiguredBackends, JobRunner
from flywheel.service.jobs._runner import INTERRUPTED
from scripted_jobs import TOPICS, Harness, classification_logs, dump, job_config

MODEL = "meta/llama-3.2-1b-instruct"
NAMESPACE = "flywheel-jobs"
#: Every secret a blueprint deployment holds; none may reach a log line or the job's record.
SECRETS = {
    "NGC_API_KEY": "ngc-5e3cr3t-never-logged",
    "HF_TOKEN": "hf_5e3cr3t-never-logged",
    "NVIDIA_API_KEY": "nvapi-5e3cr3t-never-logged",
    "NMP_API_KEY": "nmp-5e3cr3t-never-logged",
}
PLATFORM_ENV = ("NEMO_BASE_URL", "NIM_BASE_URL", "DATASTORE_BASE_URL", "NMP_NAMESPACE")
#: The Deployment Manager's name of MODEL's deployment (``model_name`` with ``/`` → ``-``).
DEPLOYMENT = "meta-llama-3.2-1b-instruct"
#: Status reads every 10 ms instead of every 5 s (deployments) and 30 s (customizations).
FAST = {"NMP_POLL_INTERVAL_S": "0.01"}


@pytest.fixture(autouse=True)
def _hub_online_for_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Why: the suite sets HF_HUB_OFFLINE; the Data Store the nemo backend uploads to through ``huggingface_hub`` is
    the emulator on loopback, so the switch is lifted (as in tests/backends/nemo)."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture(autouse=True)
def _no_platform_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Why: the point of these tests is that ``nmp_config`` alone says where the platform is."""
    for name in PLATFORM_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def served() -> Iterator[tuple[NemoEmulator, EmulatorURLs]]:
    """Why: every test gets a fresh platform on its own loopback port, whose NIM knows the topics."""
    with serve_emulator() as (emu, urls):
        emu.chat_script = _topic_answers
        yield emu, urls


def _topic_answers(body: dict[str, Any]) -> dict[str, Any]:
    """The NIM's answer: the label of the topic named in the last user message (so every answer is right)."""
    user = next(m for m in reversed(body["messages"]) if m.get("role") == "user")
    text = str(user.get("content") or "")
    label = next((f"[[[{t}]]]" for t in TOPICS if t in text), "no idea")
    return chat_completion(label, model=body.get("model", ""))


def blueprint_config(urls: EmulatorURLs, **nim: Any) -> FlywheelConfig:
    """A blueprint-style configuration: ``nmp_config`` and a ``nims[]`` entry without ``backend``."""
    data = job_config().model_dump(exclude_unset=True)
    data["nims"] = [{"model_name": MODEL, "context_length": 8192, "gpus": 1, "tag": "1.8.3", **nim}]
    data["nmp_config"] = {
        "nemo_base_url": urls.nemo_base_url,
        "nim_base_url": urls.nim_base_url,
        "datastore_base_url": urls.datastore_base_url,
        "nmp_namespace": NAMESPACE,
    }
    return FlywheelConfig.model_validate(data)


def nemo_runner(harness: Harness, config: FlywheelConfig, env: dict[str, str]) -> JobRunner:
    """The runner a service builds (``default_backends``): the registry's backends with the service's nmp_config."""
    backends = ConfiguredBackends(harness.home, env, config.nmp_config)
    return JobRunner(harness.repo, home=harness.home, backends=backends, env=env)


def test_a_blueprint_candidate_without_a_backend_key_runs_on_the_platform_that_nmp_config_names(
    harness: Harness,
    served: tuple[NemoEmulator, EmulatorURLs],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: httpx's, the SDK's, the runner's
    emu, urls = served
    emu.tokens.update(nemo=SECRETS["NMP_API_KEY"], nim=SECRETS["NMP_API_KEY"])  # the platform key is required
    emu.add_deployment(NAMESPACE, DEPLOYMENT, MODEL)  # served already: flywheel did not start it
    config = blueprint_config(urls)
    assert config.nims[0].backend == "nemo"
    harness.ingest(classification_logs(60))
    job_id = harness.submit(config)

    assert nemo_runner(harness, config, {**SECRETS, **FAST}).run(job_id) == "completed"

    detail = harness.repo.detail(job_id)
    (nim,) = detail["nims"]
    assert [e["eval_type"] for e in nim["evaluations"]] == ["base-eval", "icl-eval"], dump(detail)
    for evaluation in nim["evaluations"]:
        assert evaluation["status"] == "completed" and evaluation["scores"]["f1_score"] == 1.0, dump(detail)
    chats = emu.requests_to("POST", "/nim/v1/chat/completions")
    assert len(chats) == 40  # 20 base and 20 ICL prompts, all to the NIM that nmp_config names
    assert {c.json()["model"] for c in chats} == {MODEL}
    systems = [str(c.json()["messages"][0]["content"]) for c in chats]
    assert sum("examples" in text for text in systems) == 20  # the ICL prompts carry their examples
    # the deployment that was there is reused, recorded as not flywheel's, and left running
    assert emu.created["deployment"] == 0, [(r.method, r.path) for r in emu.requests if "deploy" in r.path]
    assert emu.created["deployment_deleted"] == 0
    assert (NAMESPACE, DEPLOYMENT) in emu.deployments
    records = [
        s.result["deployment"] for s in harness.repo.steps(job_id) if s.result and "deployment" in s.result
    ]
    assert records and all(not r["started_by_flywheel"] for r in records)
    stored = json.dumps(detail, default=str) + json.dumps(harness.repo.job(job_id).config, default=str)
    for name, secret in SECRETS.items():
        assert secret not in caplog.text, name
        assert secret not in stored, name


def test_the_nemo_backend_is_told_nmp_config_but_other_backends_never_see_it(
    served: tuple[NemoEmulator, EmulatorURLs], tmp_path: Path
) -> None:
    from flywheel.backends import registry
    from flywheel.backends.scripted import ScriptedInferenceBackend

    _, urls = served
    config = blueprint_config(urls)
    seen: list[dict[str, Any]] = []

    def inference(nim: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return ScriptedInferenceBackend(rule=lambda _r: "ok", name=nim.model_name)

    registry.register("no-platform", inference)
    try:
        backends = ConfiguredBackends(tmp_path, {}, config.nmp_config)
        backends.inference(config.nims[0].model_copy(update={"backend": "no-platform"}))
        assert "nmp" not in seen[0]  # a backend that does not run on the platform keeps its signature
        nemo = backends.inference(config.nims[0])
        assert urls.nim_base_url in repr(nemo)  # nmp_config's NIM proxy, with no URL in the environment
    finally:
        registry._REGISTRY.pop("no-platform", None)


def test_every_candidate_of_the_blueprint_example_is_a_nemo_candidate_that_can_be_deployed() -> None:
    import yaml

    from flywheel.backends.registry import backend_roles

    path = Path(__file__).parents[3] / "config" / "examples" / "blueprint.yaml"
    config = FlywheelConfig.model_validate(yaml.safe_load(path.read_text()))
    assert config.nims and {n.backend for n in config.nims} == {"nemo"}
    assert {"inference", "training", "deployment"} <= backend_roles("nemo")
    assert config.nmp_config.nim_base_url == "http://nim.test"


def test_the_blueprint_judge_runs_on_the_platform_with_the_platform_key_not_the_hosted_one(
    served: tuple[NemoEmulator, EmulatorURLs],
) -> None:
    from flywheel.backends import ChatRequest
    from flywheel.config import LLMJudgeConfig
    from flywheel.pipeline.evaluate import build_judge

    emu, urls = served
    judge_model = "meta/llama-3.3-70b-instruct"
    emu.nim_models.add(judge_model)
    emu.tokens["nim"] = SECRETS["NMP_API_KEY"]  # a hosted key sent to the platform would be refused (401)
    config = LLMJudgeConfig(deployment_type="local", model_name=judge_model, tag="1.8.5", gpus=4)

    judge = build_judge(
        config, SECRETS["NVIDIA_API_KEY"], nmp=blueprint_config(urls).nmp_config, env=dict(SECRETS)
    )
    try:
        (answer,) = judge.backend.generate([ChatRequest(messages=[{"role": "user", "content": "sport"}])])
    finally:
        judge.close()

    assert answer.content == "[[[sport]]]"
    (call,) = emu.requests_to("POST", "/nim/v1/chat/completions")
    assert call.json()["model"] == judge_model


# ------------------------------------------------------------------------------------------------ deployments


def deployment_records(harness: Harness, job_id: str) -> list[dict[str, Any]]:
    return [
        s.result["deployment"] for s in harness.repo.steps(job_id) if s.result and "deployment" in s.result
    ]


def wait_for(condition: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_job_deploys_its_candidates_nim_before_evaluating_and_shuts_it_down_after(
    harness: Harness, served: tuple[NemoEmulator, EmulatorURLs]
) -> None:
    emu, urls = served
    config = blueprint_config(urls)
    harness.ingest(classification_logs(60))
    job_id = harness.submit(config)

    assert nemo_runner(harness, config, dict(FAST)).run(job_id) == "completed"

    assert emu.created["deployment"] == 1  # deployed once, reused by the ICL evaluation
    assert emu.created["deployment_deleted"] == 1 and not emu.deployments
    (create,) = emu.requests_to("POST", "/v1/deployment/model-deployments")
    first_chat = emu.requests.index(emu.requests_to("POST", "/nim/v1/chat/completions")[0])
    assert emu.requests.index(create) < first_chat  # deployed before it was asked anything
    records = deployment_records(harness, job_id)
    assert records[-1] == {
        "ref": f"{NAMESPACE}/{DEPLOYMENT}",
        "started_by_flywheel": True,
        "status": "shut down",
    }
    assert all(e["status"] == "completed" for e in harness.repo.detail(job_id)["nims"][0]["evaluations"])


def test_a_deployment_is_recorded_before_the_wait_and_a_cancelled_job_shuts_it_down(
    harness: Harness, served: tuple[NemoEmulator, EmulatorURLs]
) -> None:
    from backends.nemo.emulator import stalls

    emu, urls = served
    emu.script("deployment", stalls())
    config = blueprint_config(urls)
    harness.ingest(classification_logs(60))
    job_id = harness.submit(config)
    runner = nemo_runner(harness, config, dict(FAST))
    result: list[str] = []
    thread = threading.Thread(target=lambda: result.append(runner.run(job_id)), daemon=True)
    thread.start()

    wait_for(lambda: any(r["status"] == "deploying" for r in deployment_records(harness, job_id)))
    assert deployment_records(harness, job_id)[0]["started_by_flywheel"] is True
    harness.repo.request_cancel(job_id)
    thread.join(60)

    assert result == ["cancelled"]
    assert emu.created["deployment"] == 1 and not emu.deployments  # flywheel's own deployment is gone


def test_a_worker_that_shuts_down_mid_deployment_leaves_it_and_the_next_one_adopts_and_removes_it(
    harness: Harness, served: tuple[NemoEmulator, EmulatorURLs]
) -> None:
    from backends.nemo.emulator import Lifecycle, Phase, stalls

    emu, urls = served
    emu.script("deployment", stalls())
    config = blueprint_config(urls)
    harness.ingest(classification_logs(60))
    job_id = harness.submit(config)
    first = nemo_runner(harness, config, dict(FAST))
    result: list[str] = []
    thread = threading.Thread(target=lambda: result.append(first.run(job_id)), daemon=True)
    thread.start()
    wait_for(lambda: any(r["status"] == "deploying" for r in deployment_records(harness, job_id)))

    first.interrupt()
    thread.join(60)
    assert result == [INTERRUPTED]
    assert (NAMESPACE, DEPLOYMENT) in emu.deployments  # left coming up for the next worker
    with emu.lock:
        emu.deployments[(NAMESPACE, DEPLOYMENT)].lifecycle = Lifecycle([Phase("ready", None)])

    assert nemo_runner(harness, config, dict(FAST)).run(job_id) == "completed"
    assert emu.created["deployment"] == 1  # adopted, not created again
    assert emu.created["deployment_deleted"] == 1 and not emu.deployments  # and known to be flywheel's


# ------------------------------------------------------------------------------------------------ customization


def test_a_worker_that_shuts_down_mid_customization_leaves_the_platform_job_and_the_next_one_reattaches(
    harness: Harness, served: tuple[NemoEmulator, EmulatorURLs]
) -> None:
    from backends.nemo.emulator import trains

    emu, urls = served
    emu.script("customization", trains(running_reads=60))
    customizer = {"target": "meta/llama-3.2-1b-instruct@2.0", "gpus": 1}
    config = blueprint_config(urls, customization_enabled=True, customizer_configs=customizer)
    harness.ingest(classification_logs(60))
    job_id = harness.submit(config)
    first = nemo_runner(harness, config, dict(FAST))
    result: list[str] = []
    thread = threading.Thread(target=lambda: result.append(first.run(job_id)), daemon=True)
    thread.start()
    wait_for(
        lambda: (
            emu.created["customization_job"] == 1
            and emu.requests_to("GET", r".*/customization/jobs/.*/status")
        )
    )

    first.interrupt()
    thread.join(60)
    assert result == [INTERRUPTED]
    (remote_id,) = emu.customization_jobs
    (step,) = [s for s in harness.repo.steps(job_id) if s.kind.value == "customization"]
    assert step.status == "pending"  # released for the next worker, which re-attaches through nemo_job.json
    remote = emu.customization_jobs[remote_id]
    assert emu.created["customization_cancel"] == 0  # the platform's job goes on without the worker
    (adapters,) = (harness.home / "jobs" / job_id / "adapters").iterdir()
    assert json.loads((adapters / "nemo_job.json").read_text())["job_id"] in emu.customization_jobs

    assert nemo_runner(harness, config, dict(FAST)).run(job_id) == "completed"
    assert emu.created["customization_job"] == 1  # re-attached: exactly one job was created
    detail = harness.repo.detail(job_id)
    (nim,) = detail["nims"]
    assert [e["eval_type"] for e in nim["evaluations"]] == ["base-eval", "icl-eval", "customized-eval"], dump(
        detail
    )
    assert all(e["status"] == "completed" for e in nim["evaluations"]), dump(detail)
    assert nim["customizations"][0]["status"] == "completed", dump(detail)
    assert remote.lifecycle.status == "completed"  # the job the first worker started is the one that finished


def test_a_job_cancelled_between_two_steps_still_shuts_its_deployment_down(
    harness: Harness, served: tuple[NemoEmulator, EmulatorURLs]
) -> None:
    emu, urls = served
    config = blueprint_config(urls)
    harness.ingest(classification_logs(60))
    job_id = harness.submit(config)
    runner = nemo_runner(harness, config, dict(FAST))
    assert runner.advance(job_id) is None  # datasets
    assert runner.advance(job_id) is None  # base-eval: deployed
    assert emu.created["deployment"] == 1 and emu.deployments

    harness.repo.request_cancel(job_id)  # no worker holds a step: the job ends at once, without the runner
    assert harness.repo.job(job_id).status == "cancelled"
    assert runner.advance(job_id) == "cancelled"

    assert not emu.deployments and deployment_records(harness, job_id)[-1]["status"] == "shut down"
