"""deploy/compose.yaml through Debian's `docker-compose config` (the compose schema, interpolation, env files,
anchors), with the example env files; then what each profile must hold. No image is built and nothing is started."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from flywheel.config import Settings
from flywheel.config._load import load_config_file

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
EXAMPLES = {"FLYWHEEL_ENV_FILE": "env/flywheel.env.example", "POSTGRES_ENV_FILE": "env/postgres.env.example"}
PROFILES = {
    "embedded": {"flywheel"},
    "scale-out": {"migrate", "api", "cpu-worker", "postgres", "redis", "mlflow"},
    "gpu": {"gpu-worker"},
}
FLYWHEEL_SERVICES = {"flywheel", "migrate", "api", "cpu-worker", "gpu-worker"}


def compose_config(docker_compose: str, profile: str, **env: str) -> dict[str, Any]:
    # The checker's own environment only: the developer's COMPOSE_* or FLYWHEEL_* variables must not leak in.
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "FLYWHEEL_", "DOCKER_"))}
    result = subprocess.run(
        [docker_compose, "-f", str(DEPLOY / "compose.yaml"), "--profile", profile, "config"],
        cwd=DEPLOY,
        env={**clean, **EXAMPLES, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, Any]]:
    """Why: `docker-compose config` takes about a second; every test reads the same rendering of each profile."""
    import shutil

    found = shutil.which("docker-compose")
    if found is None:
        pytest.skip(
            "docker-compose is not installed here (Debian package docker-compose; .ci/run installs it)"
        )
    return {profile: compose_config(found, profile) for profile in PROFILES}


def services(rendered: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return rendered["embedded"]["services"]  # type: ignore[no-any-return]


def test_each_profile_renders_with_the_example_env_files(rendered: dict[str, dict[str, Any]]) -> None:
    for profile, config in rendered.items():
        assert set(config["services"]) == set().union(*PROFILES.values()), profile


def test_every_service_belongs_to_exactly_the_profile_it_is_meant_for(
    rendered: dict[str, dict[str, Any]],
) -> None:
    # docker-compose 1.x renders every service whatever the profile: the membership is checked here.
    for profile, names in PROFILES.items():
        members = {name for name, svc in services(rendered).items() if profile in svc.get("profiles", [])}
        assert members == names, profile
    assert all(len(svc.get("profiles", [])) == 1 for svc in services(rendered).values()), (
        "a service without profile"
    )


def test_the_embedded_profile_is_one_container_with_sqlite_on_a_named_volume(
    rendered: dict[str, dict[str, Any]],
) -> None:
    svc = services(rendered)["flywheel"]
    assert svc["environment"]["FLYWHEEL_DATABASE_URL"] == "sqlite:////data/flywheel.db"
    assert "flywheel-data:/data:rw" in svc["volumes"]
    assert svc["command"][:2] == ["flywheel", "serve"] and "depends_on" not in svc


def test_long_running_services_have_healthchecks_and_the_stack_starts_in_order(
    rendered: dict[str, dict[str, Any]],
) -> None:
    svcs = services(rendered)
    for name, svc in svcs.items():
        if name == "migrate":
            assert svc["restart"] == "no" and "healthcheck" not in svc
            continue
        assert svc["healthcheck"]["test"][0] == "CMD", name
    for name in ("api", "cpu-worker", "gpu-worker"):
        assert svcs[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        assert svcs[name]["depends_on"]["redis"]["condition"] == "service_healthy", name
    assert svcs["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert svcs["migrate"]["command"] == ["flywheel", "db", "upgrade"]
    for name in ("api", "cpu-worker", "gpu-worker"):
        assert (REPO / svcs[name]["healthcheck"]["test"][2].removeprefix("/app/")).is_file()


def test_state_lives_on_named_volumes_only(rendered: dict[str, dict[str, Any]]) -> None:
    declared = set(rendered["embedded"]["volumes"])
    assert declared == {"flywheel-data", "postgres-data", "redis-data", "mlflow-data"}
    for name, svc in services(rendered).items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            assert source in declared, f"{name}: {volume} is not a named volume"


def test_the_gpu_worker_reserves_gpus_and_runs_one_task_per_gpu(tool: Callable[[str], str]) -> None:
    docker_compose = tool("docker-compose")
    for gpus in ("1", "4"):
        env = {"FLYWHEEL_GPUS": gpus} if gpus != "1" else {}
        svc = compose_config(docker_compose, "gpu", **env)["services"]["gpu-worker"]
        (device,) = svc["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
        assert str(device["count"]) == gpus
        command = svc["command"]
        assert command[command.index("--queues") + 1] == "accelerator"
        assert command[command.index("--concurrency") + 1] == gpus


def test_the_cpu_worker_leaves_model_steps_to_the_gpu_worker_when_told(tool: Callable[[str], str]) -> None:
    docker_compose = tool("docker-compose")
    default = compose_config(docker_compose, "scale-out")["services"]["cpu-worker"]["command"]
    assert default[default.index("--queues") + 1] == "flywheel,accelerator"
    gpu = compose_config(docker_compose, "scale-out", FLYWHEEL_CPU_WORKER_QUEUES="flywheel")["services"]
    assert gpu["cpu-worker"]["command"][3] == "flywheel"


def test_secrets_come_from_the_env_files_not_the_compose_file(rendered: dict[str, dict[str, Any]]) -> None:
    source = (DEPLOY / "compose.yaml").read_text()
    for secret in (
        "FLYWHEEL_API_KEYS",
        "NVIDIA_API_KEY",
        "LLM_JUDGE_API_KEY",
        "EMB_API_KEY",
        "HF_TOKEN",
        "POSTGRES_PASSWORD",
    ):
        assert not re.search(rf"^\s*-?\s*{secret}\s*[:=]", source, re.MULTILINE), secret
    assert "FLYWHEEL_DATABASE_URL: sqlite" in source and "postgresql://" not in source
    svcs = services(rendered)
    for name in FLYWHEEL_SERVICES:
        assert svcs[name]["environment"]["FLYWHEEL_API_KEYS"] == "ops:example-change-me", name
    assert svcs["postgres"]["environment"]["POSTGRES_PASSWORD"] == "example-password"
    assert "FLYWHEEL_API_KEYS" not in svcs["postgres"]["environment"]


def test_the_example_env_files_hold_only_variables_flywheel_or_postgres_read() -> None:
    settings_source = (REPO / "src/flywheel/config/_settings.py").read_text()
    for line in (DEPLOY / "env/flywheel.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            assert f'"{name}"' in settings_source, f"flywheel does not read {name}"
            assert not value or "example" in value, f"{name}: only example values belong in the example file"
    assert (DEPLOY / "env/postgres.env.example").read_text().count("POSTGRES_PASSWORD=example-password") == 1
    ignored = (DEPLOY / ".gitignore").read_text()
    assert "/*.env" in ignored


def test_flywheel_settings_load_from_each_services_environment(rendered: dict[str, dict[str, Any]]) -> None:
    """Each flywheel container's environment, as compose gives it, is a valid flywheel configuration; the scale-out
    ones run Celery against the stack's PostgreSQL, Redis and MLflow, by the services' names."""
    svcs = services(rendered)
    for name in FLYWHEEL_SERVICES:
        env = {k: str(v) for k, v in svcs[name]["environment"].items()}
        config_path = env.get("FLYWHEEL_CONFIG", "/app/config/config.yaml")  # the image's default
        settings = Settings.load(REPO / config_path.removeprefix("/app/"), env=env)
        assert settings.api_keys and settings.api_keys[0].name == "ops"
        if name == "flywheel":
            assert settings.config.executor.kind == "inprocess"
            assert settings.database_url.startswith("sqlite:////data/")
            continue
        assert settings.config.executor.kind == "celery", name
        assert urlsplit(settings.database_url).hostname in svcs
        assert urlsplit(settings.redis_url).hostname in svcs
        mlflow = settings.config.mlflow_config
        assert mlflow.enabled and urlsplit(mlflow.tracking_uri).hostname in svcs
        assert urlsplit(mlflow.tracking_uri).port == 5000
        assert mlflow.artifact_location.startswith("/data/")  # the volume MLflow mounts too
    assert "flywheel-data:/data:ro" in svcs["mlflow"]["volumes"]


def test_the_scale_out_configuration_is_the_default_one_plus_celery_and_mlflow() -> None:
    default = load_config_file(REPO / "config/config.yaml").model_dump()
    scale_out = load_config_file(DEPLOY / "config/scale-out.yaml").model_dump()
    differing = {key for key in default if default[key] != scale_out[key]}
    assert differing == {"executor", "mlflow_config"}
