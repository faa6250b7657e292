"""Serving a candidate's base NIM through the NeMo Deployment Manager (the ``deployment`` role).

``deploy()`` reuses a deployment of the same name when there is one, else creates it
(``POST /v1/deployment/model-deployments`` with the image, tag, GPUs and volume size from ``nims[]``), then polls
``GET …/model-deployments/{namespace}/{name}`` until ``status_details.status`` is ``ready`` — the status the
platform's documentation names (the reference waits for ``deployed``, which the platform never reports) — and
then until the model is in the NIM proxy's ``/v1/models``. A ``failed`` (or ``cancelled``) deployment ends the wait
at once with the platform's description; a wait in which nothing changes for ``stall_timeout_s`` ends it too.

Ownership: only a deployment this object created (or one a crashed run recorded as created, passed back in with
``started_by_flywheel=True``) is ever deleted — on ``undeploy()``, and when its wait fails, times out or is
cancelled, so that a failed deploy leaves nothing running. One that was there before is reused and left alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flywheel.backends._types import stop_is_cancel
from flywheel.backends.nemo._client import PlatformClient, PlatformError
from flywheel.config._models import NIMConfig
from flywheel.errors import BackendError, ConfigError, JobCancelled

logger = logging.getLogger(__name__)

#: Deployment statuses that end a wait: ready, or never going to be.
READY = "ready"
FAILED = frozenset({"failed", "cancelled", "cancelling"})
#: Environment the reference sets on every NIM it deploys (guided decoding for structured answers).
DEFAULT_ENVS = {"NIM_GUIDED_DECODING_BACKEND": "outlines"}


@dataclass(frozen=True)
class DeploymentSpec:
    """What to deploy: the Deployment Manager's ``{namespace}/{name}``, the model and its NIM container."""

    namespace: str
    name: str
    model: str
    image_name: str
    image_tag: str
    gpus: int
    pvc_size: str | None = None
    additional_envs: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ENVS))

    @classmethod
    def from_nim(cls, nim: NIMConfig, namespace: str) -> DeploymentSpec:
        """From a candidate's ``nims[]`` entry, as the reference builds it: name ``model_name`` with ``/`` → ``-``,
        image ``{registry_base}/{model_name}:{tag}``."""
        missing = [key for key in ("tag", "gpus") if getattr(nim, key) is None]
        if missing:
            raise ConfigError(
                f"Candidate {nim.model_name!r} is deployed on the NeMo platform and needs "
                + " and ".join(f"nims[].{key}" for key in missing)
                + " (the NIM container tag and its GPU count).",
                problems=[(f"nims[].{key}", "required to deploy with backend nemo") for key in missing],
            )
        return cls(
            namespace=namespace,
            name=nim.model_name.replace("/", "-"),
            model=nim.model_name,
            image_name=f"{nim.registry_base.rstrip('/')}/{nim.model_name}",
            image_tag=str(nim.tag),
            gpus=int(nim.gpus or 0),
            pvc_size=nim.pvc_size,
        )

    def request_body(self) -> dict[str, Any]:
        """The ``POST /v1/deployment/model-deployments`` body."""
        nim: dict[str, Any] = {
            "image_name": self.image_name,
            "image_tag": self.image_tag,
            "gpu": self.gpus,
            "additional_envs": dict(self.additional_envs),
        }
        if self.pvc_size:
            nim["pvc_size"] = self.pvc_size
        return {
            "name": self.name,
            "namespace": self.namespace,
            "config": {"model": self.model, "nim_deployment": nim},
        }


@dataclass(frozen=True)
class DeploymentProgress:
    """One observation while waiting: ``phase`` ``deploying`` (the Deployment Manager's ``status``) or
    ``syncing`` (ready, waiting for the model in the NIM proxy's list)."""

    phase: str
    status: str
    description: str | None
    elapsed_s: float


class NimDeployment:
    """A :class:`~flywheel.backends.DeploymentBackend` for one candidate's base NIM.

    Args:
        client: The platform client.
        spec: What to deploy (:meth:`DeploymentSpec.from_nim`).
        poll_interval_s: Seconds between status reads.
        stall_timeout_s: A wait ends when neither the status nor its description changed for this long.
        timeout_s: A wait ends after this long whatever happens (``None``: no such bound).
        started_by_flywheel: This deployment was created by flywheel earlier (e.g. recorded by a step before a
            crash), so it may be shut down.
        clock, sleep: Time source and wait function (tests pass a fake clock).
    """

    def __init__(
        self,
        client: PlatformClient,
        spec: DeploymentSpec,
        *,
        poll_interval_s: float = 5.0,
        stall_timeout_s: float = 3600.0,
        timeout_s: float | None = None,
        started_by_flywheel: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.spec = spec
        self.poll_interval_s = poll_interval_s
        self.stall_timeout_s = stall_timeout_s
        self.timeout_s = timeout_s
        self._started = started_by_flywheel
        self._clock = clock
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"NimDeployment({self.ref!r}, started_by_flywheel={self._started})"

    @property
    def ref(self) -> str:
        """``{namespace}/{name}`` in the Deployment Manager."""
        return f"{self.spec.namespace}/{self.spec.name}"

    @property
    def started_by_flywheel(self) -> bool:
        """Whether flywheel created this deployment (and so may shut it down)."""
        return self._started

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible root the model is served at, ``{nim_base_url}/v1``."""
        return self.client.endpoints.nim_v1

    # ------------------------------------------------------------------------------------------------- public API

    def deploy(
        self,
        on_progress: Callable[[DeploymentProgress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_started: Callable[[NimDeployment], None] | None = None,
    ) -> str:
        """Make the model served and wait until it is; returns :attr:`base_url`.

        ``on_progress`` hears every status read; ``should_stop`` is asked before each one (true: stop, shut down
        what this call started — unless it is a :class:`~flywheel.backends.StopCheck` that says only the worker
        stops, see :func:`~flywheel.backends.stop_is_cancel` — and raise :class:`~flywheel.errors.JobCancelled`);
        ``on_started`` is called right after this call created the deployment, before any wait, so that a caller
        can record it for cleanup after a crash. Raises :class:`~flywheel.errors.BackendError` when the deployment
        fails, stalls or times out.
        """
        record = self._get()
        if record is None:
            record = self._create()
            if self._started and on_started is not None:
                on_started(self)
        else:
            status = _status(record)
            if status in FAILED and not self._started:
                raise BackendError(
                    f"The NeMo deployment {self.ref} of {self.spec.model!r} exists with status {status!r} "
                    f"({_description(record) or 'no description'}), and flywheel did not start it, so it leaves it "
                    f"alone; delete it (DELETE /v1/deployment/model-deployments/{self.ref}) and run again."
                )
            logger.info(
                "reusing NeMo deployment %s (status %s; %s)",
                self.ref,
                status,
                "started by flywheel"
                if self._started
                else "not started by flywheel, so it will be left running",
            )
        try:
            self._wait_ready(record, on_progress, should_stop)
            self._wait_served(on_progress, should_stop)
        except JobCancelled:
            if stop_is_cancel(should_stop):
                self._shut_down_after_failure()
            else:  # only this worker stops: the one that resumes the job finds the deployment going on
                logger.info(
                    "leaving NeMo deployment %s to come up: the worker stops, the job goes on", self.ref
                )
            raise
        except BaseException:
            self._shut_down_after_failure()
            raise
        return self.base_url

    def undeploy(self) -> None:
        """Shut the deployment down if flywheel started it, and wait until it is gone; otherwise leave it."""
        if not self._started:
            logger.info("leaving NeMo deployment %s running: flywheel did not start it", self.ref)
            return
        self._delete()
        deadline = self._clock() + max(self.stall_timeout_s, self.poll_interval_s)
        while self._get() is not None:
            if self._clock() >= deadline:
                logger.warning("NeMo deployment %s is still listed after its deletion was accepted", self.ref)
                return
            self._sleep(self.poll_interval_s)
        logger.info("NeMo deployment %s shut down", self.ref)

    def close(self) -> None:
        """Close the platform client's connections (the registry gives each deployment its own client)."""
        self.client.close()

    # ------------------------------------------------------------------------------------------------- internals

    def _get(self) -> dict[str, Any] | None:
        """The deployment's record, or ``None`` when there is none."""
        sdk = self.client.sdk
        try:
            model = self.client.call(
                f"get deployment {self.ref}",
                lambda: sdk.deployment.model_deployments.retrieve(
                    self.spec.name, namespace=self.spec.namespace
                ),
            )
        except PlatformError as exc:
            if exc.status_code == 404:
                return None
            raise
        record: dict[str, Any] = model.to_dict()
        return record

    def _create(self) -> dict[str, Any]:
        sdk = self.client.sdk
        body = self.spec.request_body()
        what = f"create deployment {self.ref} of {self.spec.model!r}"
        try:
            # Not retried: a retry after a lost answer could not tell our deployment from someone else's.
            created = self.client.call(
                what, lambda: sdk.deployment.model_deployments.create(**body), retry=False
            )
        except PlatformError as exc:
            already = exc.status_code == 409 or "already exists" in exc.detail.lower()
            if already:  # someone created it since we looked (some platform versions say so with a 500)
                logger.info("NeMo deployment %s was created meanwhile by someone else; reusing it", self.ref)
                theirs = self._get()
                if theirs is not None:
                    return theirs
            elif exc.status_code is None or exc.status_code >= 500:
                arrived = (
                    self._get()
                )  # the request may have arrived: it was not there a moment ago, so it is ours
                if arrived is not None:
                    self._started = True
                    return arrived
            raise
        self._started = True
        logger.info(
            "NeMo deployment %s of %s:%s created", self.ref, self.spec.image_name, self.spec.image_tag
        )
        record: dict[str, Any] = created.to_dict()
        return record

    def _wait_ready(
        self,
        record: dict[str, Any],
        on_progress: Callable[[DeploymentProgress], None] | None,
        should_stop: Callable[[], bool] | None,
    ) -> None:
        started = last_change = self._clock()
        seen: tuple[str, str | None] | None = None
        while True:
            status, description = _status(record), _description(record)
            now = self._clock()
            if on_progress is not None:
                on_progress(DeploymentProgress("deploying", status, description, now - started))
            if status == READY:
                logger.info("NeMo deployment %s is ready after %.0fs", self.ref, now - started)
                return
            if status in FAILED:
                raise BackendError(
                    f"The NeMo deployment {self.ref} of {self.spec.model!r} ended with status {status!r}: "
                    f"{description or 'no description'}. Check the image ({self.spec.image_name}:"
                    f"{self.spec.image_tag}), the GPUs ({self.spec.gpus}) and the volume size in nims[]."
                )
            if (status, description) != seen:
                if seen is not None:
                    logger.info("NeMo deployment %s: %s (%s)", self.ref, status, description or "")
                seen, last_change = (status, description), now
            self._check_time(now, started, last_change, f"to become ready (last status {status!r})")
            self._stop_if_asked(should_stop)
            self._sleep(self.poll_interval_s)
            current = self._get()
            if current is None:
                raise BackendError(
                    f"The NeMo deployment {self.ref} disappeared while flywheel waited for it to become ready."
                )
            record = current

    def _wait_served(
        self, on_progress: Callable[[DeploymentProgress], None] | None, should_stop: Callable[[], bool] | None
    ) -> None:
        started = self._clock()
        while True:
            now = self._clock()
            if self.spec.model in self.client.served_models():
                return
            if on_progress is not None:
                on_progress(DeploymentProgress("syncing", READY, "waiting for the NIM proxy", now - started))
            self._check_time(now, started, started, f"to appear in {self.client.endpoints.nim_v1}/models")
            self._stop_if_asked(should_stop)
            self._sleep(self.poll_interval_s)

    def _check_time(self, now: float, started: float, last_change: float, what: str) -> None:
        if now - last_change >= self.stall_timeout_s:
            raise BackendError(
                f"The NeMo deployment {self.ref} of {self.spec.model!r} made no progress for "
                f"{self.stall_timeout_s:g}s while waiting {what}; gave up. Check the deployment's events on the "
                "cluster, or raise the stall timeout."
            )
        if self.timeout_s is not None and now - started >= self.timeout_s:
            raise BackendError(
                f"The NeMo deployment {self.ref} of {self.spec.model!r} did not finish within {self.timeout_s:g}s "
                f"while waiting {what}; gave up."
            )

    def _stop_if_asked(self, should_stop: Callable[[], bool] | None) -> None:
        if should_stop is not None and should_stop():
            raise JobCancelled(f"Stopped waiting for the NeMo deployment {self.ref}: the job was cancelled.")

    def _shut_down_after_failure(self) -> None:
        """After a failed, stalled or cancelled wait: delete the deployment if it is ours; never raise."""
        if not self._started:
            return
        try:
            self._delete()
            logger.info("NeMo deployment %s shut down after its deploy did not succeed", self.ref)
        except BackendError as exc:
            logger.warning("could not shut down NeMo deployment %s: %s", self.ref, exc)

    def _delete(self) -> None:
        sdk = self.client.sdk
        try:
            self.client.call(
                f"delete deployment {self.ref}",
                lambda: sdk.deployment.model_deployments.delete(
                    self.spec.name, namespace=self.spec.namespace
                ),
            )
        except PlatformError as exc:
            if exc.status_code != 404:
                raise


def _status(record: dict[str, Any]) -> str:
    return str((record.get("status_details") or {}).get("status") or "unknown").lower()


def _description(record: dict[str, Any]) -> str | None:
    value = (record.get("status_details") or {}).get("description")
    return str(value) if value else None
