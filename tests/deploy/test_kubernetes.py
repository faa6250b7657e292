"""deploy/kubernetes: every overlay rendered by `kubectl kustomize` and validated strictly by kubernetes-validate
against the Kubernetes schemas it ships (offline); then what the rendered manifests must hold. No cluster is used."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from flywheel.config._load import load_config_file

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "deploy/kubernetes"
OVERLAYS = ("embedded", "scale-out", "gpu", "external")
#: Secrets the user creates (README, "Run it as a service"); everything else a manifest refers to is rendered.
USER_SECRETS = {"flywheel-secrets", "flywheel-postgres", "flywheel-tls"}


@pytest.fixture(scope="module")
def manifests() -> dict[str, list[dict[str, Any]]]:
    """Why: rendering an overlay runs kubectl; every test reads the same rendering of each overlay."""
    import shutil

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip(
            "kubectl is not installed here (it renders the Kustomize overlays; the CI machine has it)"
        )
    out = {}
    for overlay in OVERLAYS:
        result = subprocess.run(
            [kubectl, "kustomize", str(KUBERNETES / "overlays" / overlay)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"{overlay}: {result.stderr}"
        out[overlay] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return out


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield doc, doc["spec"]["template"]["spec"]


def container(doc: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in doc["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlay_validates_strictly_against_the_kubernetes_schemas(
    manifests: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is in the dev extra (make install)"
    )
    version = kubernetes_validate.latest_version()
    for doc in manifests[overlay]:
        kubernetes_validate.validate(doc, version, strict=True)  # raises on any schema error or unknown field


def test_the_validator_rejects_what_a_cluster_would() -> None:
    """Why this check is worth running: a misspelt field is an error, not a silently dropped key."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    bad = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "x"},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "x", "image": "x"}],
                    "restartPolicyy": "Never",
                }
            }
        },
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, kubernetes_validate.latest_version(), strict=True)


def test_the_embedded_overlay_is_one_api_pod_on_its_own_volume(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    docs = manifests["embedded"]
    assert {
        (
            d["kind"],
            d["metadata"]["name"].rsplit("-", 1)[0] if d["kind"] == "ConfigMap" else d["metadata"]["name"],
        )
        for d in docs
    } == {
        ("Deployment", "flywheel-api"),
        ("Service", "flywheel-api"),
        ("PersistentVolumeClaim", "flywheel-data"),
        ("ConfigMap", "flywheel-env"),
    }
    api = find(docs, "Deployment", "flywheel-api")
    assert api["spec"]["replicas"] == 1 and api["spec"]["strategy"]["type"] == "Recreate"
    assert find(docs, "PersistentVolumeClaim", "flywheel-data")["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert all(d["metadata"]["namespace"] == "flywheel" for d in docs)


@pytest.mark.parametrize("overlay", ["scale-out", "gpu", "external"])
def test_scale_out_runs_workers_after_a_migration_job_on_shared_storage(
    manifests: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = manifests[overlay]
    job = find(docs, "Job", "flywheel-migrate")
    assert container(job, "migrate")["args"] == ["flywheel", "db", "upgrade"]
    for name in ("flywheel-api", "flywheel-cpu-worker") + (
        ("flywheel-gpu-worker",) if overlay != "scale-out" else ()
    ):
        deployment = find(docs, "Deployment", name)
        (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
        assert init["args"][:2] == ["python", "/app/deploy/bin/wait_for_store.py"], name
    assert find(docs, "Deployment", "flywheel-api")["spec"]["replicas"] >= 2
    assert find(docs, "PersistentVolumeClaim", "flywheel-data")["spec"]["accessModes"] == ["ReadWriteMany"]
    in_cluster = {d["metadata"]["name"] for d in docs if d["kind"] == "StatefulSet"}
    assert in_cluster == (set() if overlay == "external" else {"postgres", "redis"})


@pytest.mark.parametrize(("overlay", "gpus"), [("gpu", "1"), ("external", "2")])
def test_the_gpu_workers_concurrency_is_its_gpus_per_pod(
    manifests: dict[str, list[dict[str, Any]]], overlay: str, gpus: str
) -> None:
    docs = manifests[overlay]
    worker = container(find(docs, "Deployment", "flywheel-gpu-worker"), "worker")
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == gpus
    args = worker["args"]
    assert args[args.index("--queues") + 1] == "accelerator"
    assert args[args.index("--concurrency") + 1] == gpus
    assert worker["image"] == "flywheel:gpu"
    cpu = container(find(docs, "Deployment", "flywheel-cpu-worker"), "worker")["args"]
    assert cpu[cpu.index("--queues") + 1] == "flywheel", (
        "the CPU worker must leave model steps to the GPU worker"
    )


def test_without_gpus_the_cpu_worker_takes_every_queue(manifests: dict[str, list[dict[str, Any]]]) -> None:
    args = container(find(manifests["scale-out"], "Deployment", "flywheel-cpu-worker"), "worker")["args"]
    assert args[args.index("--queues") + 1] == "flywheel,accelerator"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_non_root_bounded_and_probed(
    manifests: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    for doc, spec in pod_specs(manifests[overlay]):
        name = doc["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        for c in spec["containers"] + spec.get("initContainers", []):
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert c["resources"]["requests"] and c["resources"]["limits"]["memory"], (name, c["name"])
            if doc["kind"] != "Job" and c in spec["containers"]:
                assert "livenessProbe" in c, (name, c["name"])
        if name == "flywheel-api":
            api = container(doc, "api")
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert api[probe]["httpGet"]["path"] == "/health", probe
        if "worker" in name:
            assert container(doc, "worker")["livenessProbe"]["exec"]["command"] == [
                "python",
                "/app/deploy/bin/healthcheck.py",
                "worker",
            ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_reference_resolves(manifests: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    docs = manifests[overlay]
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for _, spec in pod_specs(docs):
        for c in spec["containers"] + spec.get("initContainers", []):
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    assert ("ConfigMap", source["configMapRef"]["name"]) in names
                else:
                    assert source["secretRef"]["name"] in USER_SECRETS
            for var in c.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                assert ref is None or ref["name"] in USER_SECRETS
        for volume in spec.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) in names
    for service in (d for d in docs if d["kind"] == "Service"):
        selector = service["spec"]["selector"]
        assert any(
            selector.items() <= doc["spec"]["template"]["metadata"]["labels"].items()
            for doc, _ in pod_specs(docs)
        ), service["metadata"]["name"]
    for ingress in (d for d in docs if d["kind"] == "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert ("Service", path["backend"]["service"]["name"]) in names


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_configuration_the_pods_read_ships_in_the_image_and_names_the_stacks_services(
    manifests: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = manifests[overlay]
    (env,) = [
        d["data"]
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("flywheel-env")
    ]
    config = load_config_file(REPO / env["FLYWHEEL_CONFIG"].removeprefix("/app/"))
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    if overlay == "embedded":
        assert config.executor.kind == "inprocess" and "REDIS_URL" not in env
        return
    assert config.executor.kind == "celery"
    assert urlsplit(config.mlflow_config.tracking_uri).hostname in services
    if overlay != "external":
        assert urlsplit(env["REDIS_URL"]).hostname in services
        # The example env file's database host is the in-cluster PostgreSQL's Service too (and compose's service).
        example = (REPO / "deploy/env/flywheel.env.example").read_text()
        url = next(
            line.split("=", 1)[1]
            for line in example.splitlines()
            if line.startswith("FLYWHEEL_DATABASE_URL=")
        )
        assert urlsplit(url).hostname in services


def test_every_component_is_used_by_an_overlay() -> None:
    used = set()
    for overlay in OVERLAYS:
        kustomization = yaml.safe_load((KUBERNETES / "overlays" / overlay / "kustomization.yaml").read_text())
        used |= {Path(c).name for c in kustomization.get("components", [])}
    assert used == {p.name for p in (KUBERNETES / "components").iterdir() if p.is_dir()}
