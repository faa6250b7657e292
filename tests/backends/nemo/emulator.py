"""A loopback emulator of the NeMo microservices platform (v1 APIs), for the ``nemo`` backend's tests.

No NeMo cluster can run on our machines, so the backend is tested against this: a FastAPI app served by uvicorn on
127.0.0.1 (:func:`serve_emulator`) that speaks the subset of the platform flywheel uses, with the shapes of the
platform's documentation and of the official ``nemo-microservices`` SDK 1.5 types:

==============================  ===============================================================================
Entity Store (``/``)            ``/v1/namespaces``, ``/v1/datasets``, ``/v1/models`` (create, get, patch, delete,
                                list)
Deployment Manager (``/``)      ``/v1/deployment/model-deployments`` (create, get, delete, list);
                                ``created|pending → ready | failed``; a second create is a 409
                                (``deployment_conflict_status`` = 500 plays the reference's observed bug)
Customizer (``/``)              ``/v1/customization/configs``, ``/v1/customization/jobs`` (create, get, ``/status``,
                                ``/cancel``, list); ``created → pending → running → completed | failed``,
                                cancel: ``cancelling → cancelled``; a completed job's ``output_model`` is registered
                                and reaches the NIM's list after ``model_sync_reads`` reads of it
Data Store (``/datastore``)     ``/v1/datastore/namespaces`` and the Hugging Face API under ``/v1/hf`` that
                                ``huggingface_hub.HfApi`` uses: ``api/repos/create``, ``api/repos/delete``,
                                ``api/datasets/{repo}[/revision/{rev}]`` (repo info),
                                ``api/datasets/{repo}/preupload/{rev}`` and ``api/datasets/{repo}/commit/{rev}``
                                (every file ``regular``, committed inline as base64)
NIM proxy (``/nim``)            OpenAI ``/v1/models``, ``/v1/chat/completions`` (``chat_script``),
                                ``/v1/embeddings`` (``input_type`` required by ``asymmetric_embedding_models``)
==============================  ===============================================================================

Errors are ``{"detail": "..."}`` (``{"detail": [{loc, msg, type}]}`` for 422), the NIM's are OpenAI-style error
objects, the Hugging Face routes' ``{"error": "..."}``. Lists are paginated with ``page``/``page_size`` and answer
``{object, data, pagination: {page, page_size, current_page_size, total_pages, total_results}}``.

Time is the test's: every resource with a status walks through a :class:`Lifecycle` of :class:`Phase` s, one step
per read of its status (``tick_on_read``, the default) or per :meth:`NemoEmulator.advance`. A phase may last for
ever (a stall). :meth:`NemoEmulator.script` sets the phases a deployment or job will walk through (``ready_after``,
``fails_after``, ``stalls``, ``trains``, ``trains_then_fails``); :meth:`NemoEmulator.fail` and
:meth:`NemoEmulator.slow` make any route answer an error or answer late. Every request is recorded
(``requests``) and every successful creation counted (``created``), so a test can assert that exactly one job was
created or that a secret was sent only where it belongs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import re
import secrets
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from servers import serve

# ------------------------------------------------------------------------------------------------ status machines


@dataclass(frozen=True)
class Phase:
    """One status a resource shows for ``reads`` reads (``None``: for ever), with a description for its logs.

    The answer to the request that created the resource is its first read.
    """

    status: str
    reads: int | None = 1
    detail: str | None = None


@dataclass
class Lifecycle:
    """The phases one resource walks through, one read at a time; the last phase lasts for ever."""

    phases: list[Phase]
    index: int = 0
    reads_in_phase: int = 0
    running_reads: int = 0  # reads spent in "running" so far (training progress is derived from it)

    @property
    def phase(self) -> Phase:
        return self.phases[self.index]

    @property
    def status(self) -> str:
        return self.phase.status

    def tick(self) -> None:
        """One more read: stay, or move to the next phase once this one has been seen ``reads`` times."""
        if self.phase.status == "running":
            self.running_reads += 1
        self.reads_in_phase += 1
        reads = self.phase.reads
        if reads is not None and self.reads_in_phase >= reads and self.index < len(self.phases) - 1:
            self.index += 1
            self.reads_in_phase = 0

    def jump(self, phases: list[Phase]) -> None:
        """Replace what is left of the walk (cancel, delete)."""
        self.phases = [*self.phases[: self.index + 1], *phases]
        self.index += 1
        self.reads_in_phase = 0


def ready_after(reads: int = 2, status: str = "pending") -> list[Phase]:
    """A deployment that shows ``status`` for ``reads`` reads, then ``ready``."""
    return [Phase(status, reads), Phase("ready", None)]


def fails_after(reads: int = 1, detail: str = "ImagePullBackOff: image not found") -> list[Phase]:
    """A deployment that shows ``pending`` for ``reads`` reads, then ``failed``."""
    return [Phase("pending", reads), Phase("failed", None, detail)]


def stalls(status: str = "pending") -> list[Phase]:
    """A resource that never leaves ``status``."""
    return [Phase(status, None)]


def trains(running_reads: int = 4, *, queued_reads: int = 1) -> list[Phase]:
    """A customization job: ``created``, ``pending`` for ``queued_reads``, ``running`` for ``running_reads``
    (progress spread evenly over them), then ``completed``."""
    return [
        Phase("created", 1),
        Phase("pending", queued_reads),
        Phase("running", running_reads),
        Phase("completed", None),
    ]


def trains_then_fails(running_reads: int = 2, detail: str = "NotEnoughResources") -> list[Phase]:
    """A customization job that runs for ``running_reads`` reads and then fails with ``detail`` in its logs."""
    return [Phase("created", 1), Phase("running", running_reads), Phase("failed", None, detail)]


# ------------------------------------------------------------------------------------------------ faults


@dataclass
class Fault:
    """Requests matching ``method`` and ``path`` (a regular expression over the whole path) answer ``status`` with
    ``body`` (or go on, ``delay_s`` late, when ``status`` is None); ``times`` requests in all (None: every one)."""

    method: str | None
    path: str
    status: int | None = None
    body: Any = None
    delay_s: float = 0.0
    times: int | None = 1
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        return (self.method is None or self.method == method) and re.fullmatch(self.path, path) is not None


@dataclass
class RecordedRequest:
    """One request the emulator received."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


# ------------------------------------------------------------------------------------------------ state


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat()


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _entity_id(prefix: str) -> str:
    """``<prefix>-base58(uuid4)``, the platform's id format."""
    number = int.from_bytes(secrets.token_bytes(16), "big")
    digits = ""
    while number:
        number, rest = divmod(number, 58)
        digits = _B58[rest] + digits
    return f"{prefix}-{digits}"


@dataclass
class Repo:
    """A Data Store dataset repository: its files and commits."""

    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)


@dataclass
class Deployment:
    record: dict[str, Any]
    lifecycle: Lifecycle


@dataclass
class CustomizationJob:
    record: dict[str, Any]
    lifecycle: Lifecycle
    total_steps: int
    steps_per_epoch: int
    epochs: int
    train_loss: list[dict[str, Any]] = field(default_factory=list)
    val_loss: list[dict[str, Any]] = field(default_factory=list)
    status_logs: list[dict[str, Any]] = field(default_factory=list)
    logged_status: str | None = None


ChatScript = Callable[[dict[str, Any]], dict[str, Any]]


class NemoEmulator:
    """State of the emulated platform, its scripts and faults, and what it was asked (all thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.requests: list[RecordedRequest] = []
        self.created: Counter[str] = Counter()
        self.faults: list[Fault] = []
        self.tick_on_read = True
        #: The bearer token each route family requires (``nemo``: the platform, ``datastore``: Data Store
        #: namespaces, ``hf``: the Data Store's Hugging Face API, ``nim``: the NIM proxy); None: none.
        self.tokens: dict[str, str | None] = {"nemo": None, "datastore": None, "hf": None, "nim": None}
        #: The status the Deployment Manager answers for a deployment that exists (the reference saw 500).
        self.deployment_conflict_status = 409
        #: Reads of the NIM's model list before a finished customization's model shows in it.
        self.model_sync_reads = 1
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.datasets: dict[tuple[str, str], dict[str, Any]] = {}
        self.models: dict[tuple[str, str], dict[str, Any]] = {}
        self.datastore_namespaces: dict[str, dict[str, Any]] = {}
        self.repos: dict[tuple[str, str], Repo] = {}
        self.deployments: dict[tuple[str, str], Deployment] = {}
        self.customization_configs: dict[tuple[str, str], dict[str, Any]] = {}
        self.customization_jobs: dict[str, CustomizationJob] = {}
        #: Models the NIM proxy serves besides deployed and customized ones (e.g. an embedding model).
        self.nim_models: set[str] = set()
        #: Models whose embeddings need ``input_type`` (NVIDIA's asymmetric retrievers).
        self.asymmetric_embedding_models: set[str] = set()
        self.chat_script: ChatScript = echo_chat
        self._scripts: dict[tuple[str, str | None], list[Phase]] = {
            ("deployment", None): ready_after(2),
            ("customization", None): trains(4),
        }
        self._customized_ready: dict[
            str, int
        ] = {}  # customized model → NIM model-list reads left before it shows

    # ------------------------------------------------------------------------------------------ test controls

    def script(self, kind: str, phases: list[Phase], name: str | None = None) -> None:
        """The phases the next ``kind`` (``deployment`` | ``customization``) resources walk through: those named
        ``name`` (a deployment's name, a job's ``name``), or all of them when ``name`` is None."""
        if kind not in ("deployment", "customization"):
            raise ValueError(f"unknown kind {kind!r}")
        with self.lock:
            self._scripts[(kind, name)] = list(phases)

    def fail(
        self,
        method: str | None,
        path: str,
        status: int = 500,
        detail: Any = "Internal Server Error",
        *,
        times: int | None = 1,
    ) -> Fault:
        """The next ``times`` requests matching ``method`` and ``path`` (a regex) answer ``status`` with
        ``{"detail": detail}`` (``detail`` a dict or list: that body as it is)."""
        body = detail if isinstance(detail, (dict, list)) else {"detail": detail}
        fault = Fault(method, path, status=status, body=body, times=times)
        with self.lock:
            self.faults.append(fault)
        return fault

    def slow(self, method: str | None, path: str, delay_s: float, *, times: int | None = None) -> Fault:
        """Requests matching ``method`` and ``path`` answer ``delay_s`` seconds late."""
        fault = Fault(method, path, delay_s=delay_s, times=times)
        with self.lock:
            self.faults.append(fault)
        return fault

    def advance(self, reads: int = 1) -> None:
        """Move every deployment and job on by ``reads`` reads, as if each had been polled."""
        with self.lock:
            for _ in range(reads):
                for deployment in self.deployments.values():
                    self._tick_deployment(deployment)
                for job in self.customization_jobs.values():
                    self._tick_job(job)

    def add_deployment(self, namespace: str, name: str, model: str, status: str = "ready") -> None:
        """A deployment someone else made (not through the API, so not counted in ``created``)."""
        with self.lock:
            record = self._deployment_record(
                {"name": name, "namespace": namespace, "config": {"model": model}}, status
            )
            self.deployments[(namespace, name)] = Deployment(record, Lifecycle([Phase(status, None)]))

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        """The recorded requests with this method whose path matches ``path`` (a regex)."""
        with self.lock:
            return [r for r in self.requests if r.method == method and re.fullmatch(path, r.path)]

    def repo_files(self, namespace: str, name: str) -> dict[str, bytes]:
        """The files of a Data Store dataset repository."""
        with self.lock:
            return dict(self.repos[(namespace, name)].files)

    def served_models(self, *, read: bool = False) -> list[str]:
        """The model ids the NIM proxy lists (``read``: count this as a read of the list)."""
        with self.lock:
            models = set(self.nim_models)
            for deployment in self.deployments.values():
                if deployment.record["status_details"]["status"] == "ready":
                    models.update(deployment.record.get("models") or [])
            for model, reads_left in list(self._customized_ready.items()):
                if reads_left <= 0:
                    models.add(model)
                elif read:
                    self._customized_ready[model] = reads_left - 1
            return sorted(models)

    # ------------------------------------------------------------------------------------------ internals

    def _phases(self, kind: str, name: str | None) -> list[Phase]:
        return list(self._scripts.get((kind, name)) or self._scripts[(kind, None)])

    def _deployment_record(self, body: dict[str, Any], status: str) -> dict[str, Any]:
        config = body.get("config")
        model = (
            config.get("model") if isinstance(config, dict) else None
        ) or f"{body.get('namespace')}/{body.get('name')}"
        now = _now()
        return {
            "name": body.get("name"),
            "namespace": body.get("namespace"),
            "description": body.get("description"),
            "config": config,
            "models": body.get("models") or [model],
            "async_enabled": body.get("async_enabled", False),
            "url": f"http://nim.emulator/{body.get('namespace')}/{body.get('name')}",
            "deployed": status == "ready",
            "status_details": {"status": status, "description": f"Deployment is {status}"},
            "created_at": now,
            "updated_at": now,
            "custom_fields": body.get("custom_fields") or {},
            "project": body.get("project"),
        }

    def _tick_deployment(self, deployment: Deployment) -> None:
        deployment.lifecycle.tick()
        phase = deployment.lifecycle.phase
        details = deployment.record["status_details"]
        if details["status"] != phase.status:
            deployment.record["updated_at"] = _now()
        details["status"] = phase.status
        details["description"] = phase.detail or f"Deployment is {phase.status}"
        deployment.record["deployed"] = phase.status == "ready"

    def _tick_job(self, job: CustomizationJob) -> None:
        job.lifecycle.tick()
        self._update_job(job)

    def _update_job(self, job: CustomizationJob) -> None:
        """Bring a job's progress, losses, logs and outputs in line with its lifecycle."""
        lifecycle = job.lifecycle
        status = lifecycle.status
        now = _now()
        running = next((p for p in lifecycle.phases if p.status == "running"), None)
        if status == "completed":
            done = job.total_steps
        elif running is None or running.reads is None:  # no training, or training that stalls: no progress
            done = job.train_loss[-1]["step"] if job.train_loss else 0
        else:
            done = min(job.total_steps, math.ceil(job.total_steps * lifecycle.running_reads / running.reads))
        self._train_to(job, done, now)
        if status == "completed":
            self._register_output(job)
        if status != job.logged_status:
            detail = lifecycle.phase.detail
            message = detail if status == "failed" and detail else status.capitalize()
            job.status_logs.append({"updated_at": now, "message": message, "detail": detail})
            job.logged_status = status
        job.record["status"] = status
        job.record["updated_at"] = now

    def _train_to(self, job: CustomizationJob, steps: int, now: str) -> None:
        done = job.train_loss[-1]["step"] if job.train_loss else 0
        for step in range(done + 1, steps + 1):
            job.train_loss.append(
                {"step": step, "value": round(2.5 * 0.93**step + 0.05, 6), "timestamp": now}
            )
            if step % job.steps_per_epoch == 0 or step == job.total_steps:  # each epoch, and at the end
                job.val_loss.append(
                    {"step": step, "value": round(2.6 * 0.94**step + 0.08, 6), "timestamp": now}
                )

    def _register_output(self, job: CustomizationJob) -> None:
        output = job.record.get("output_model")
        if not output or output in self._customized_ready or output in self.nim_models:
            return
        namespace, _, rest = output.partition("/")
        name = rest
        self.models[(namespace, name)] = {
            "name": name,
            "namespace": namespace,
            "base_model": job.record["config"],
            "peft": {"finetuning_type": "lora"},
            "created_at": _now(),
            "updated_at": _now(),
        }
        self._customized_ready[output] = self.model_sync_reads

    def _status_details(self, job: CustomizationJob) -> dict[str, Any]:
        steps = job.train_loss[-1]["step"] if job.train_loss else 0
        epochs_done = steps // job.steps_per_epoch
        details: dict[str, Any] = {
            "created_at": job.record["created_at"],
            "updated_at": job.record["updated_at"],
            "status": job.lifecycle.status,
            "steps_completed": steps,
            "epochs_completed": epochs_done,
            "steps_per_epoch": job.steps_per_epoch,
            "percentage_done": round(100.0 * epochs_done / job.epochs, 2),
            "elapsed_time": round(0.5 * len(job.train_loss), 1),
            "status_logs": list(job.status_logs),
            "metrics": {
                "keys": ["train_loss", "val_loss"],
                "metrics": {"train_loss": list(job.train_loss), "val_loss": list(job.val_loss)},
            },
        }
        if job.val_loss:
            best = min(job.val_loss, key=lambda point: point["value"])
            details["best_epoch"] = best["step"] // job.steps_per_epoch
            details["val_loss"] = best["value"]
            details["train_loss"] = next(
                (p["value"] for p in job.train_loss if p["step"] == best["step"]), job.train_loss[-1]["value"]
            )
        return details


# ------------------------------------------------------------------------------------------------ helpers


def _error(status: int, detail: Any) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _page(request: Request, items: list[dict[str, Any]]) -> JSONResponse:
    """The platform's paginated list body; 422 for a page or page size below 1."""
    try:
        page = int(request.query_params.get("page", "1"))
        page_size = int(request.query_params.get("page_size", "10"))
    except ValueError:
        return _error(
            422, [{"loc": ["query", "page"], "msg": "Input should be a valid integer", "type": "int_parsing"}]
        )
    if page < 1 or page_size < 1:
        field_name = "page" if page < 1 else "page_size"
        return _error(
            422,
            [{"loc": ["query", field_name], "msg": "Input should be greater than 0", "type": "greater_than"}],
        )
    start = (page - 1) * page_size
    data = items[start : start + page_size]
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "pagination": {
                "page": page,
                "page_size": page_size,
                "current_page_size": len(data),
                "total_pages": math.ceil(len(items) / page_size),
                "total_results": len(items),
            },
            "sort": request.query_params.get("sort", "created_at"),
        }
    )


async def _json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _missing(body: Any, *names: str) -> JSONResponse | None:
    """FastAPI's 422 body for required fields ``names`` absent from a JSON object body."""
    if not isinstance(body, dict):
        return _error(
            422, [{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}]
        )
    gone = [name for name in names if body.get(name) in (None, "")]
    if gone:
        return _error(
            422, [{"loc": ["body", name], "msg": "Field required", "type": "missing"} for name in gone]
        )
    return None


def echo_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The default NIM answer: the last user message back, with usage counted in words."""
    text = ""
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            text = str(message.get("content") or "")
            break
    prompt_words = sum(len(str(m.get("content") or "").split()) for m in body.get("messages") or [])
    words = text.split()[: body.get("max_tokens") or None]
    return chat_completion(" ".join(words), model=body.get("model", ""), prompt_tokens=prompt_words)


def chat_completion(
    content: str | None,
    *,
    model: str = "",
    tool_calls: list[dict[str, Any]] | None = None,
    prompt_tokens: int = 10,
    completion_tokens: int | None = None,
) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` body as a NIM returns it."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    completion = completion_tokens if completion_tokens is not None else len((content or "").split())
    return {
        "id": f"chatcmpl-{secrets.token_hex(8)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        },
    }


def _nim_error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse(
        {"object": "error", "message": message, "type": kind, "param": None, "code": status},
        status_code=status,
    )


def embedding_of(text: str, input_type: str | None = None, dim: int = 8) -> list[float]:
    """A deterministic unit vector for ``text`` (``passage`` and ``query`` vectors differ slightly)."""
    seed = zlib.crc32(f"{input_type or ''}:{text}".encode())
    digest = hashlib.sha256(f"{seed}:{text}".encode()).digest()
    raw = [b / 255.0 - 0.5 for b in digest[:dim]]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [round(v / norm, 6) for v in raw]


# ------------------------------------------------------------------------------------------------ the app


def create_app(emu: NemoEmulator) -> FastAPI:
    """The emulator's ASGI app: the platform at ``/``, the Data Store at ``/datastore``, the NIM proxy at ``/nim``."""
    app = FastAPI(title="NeMo platform emulator")

    @app.middleware("http")
    async def record_and_inject(request: Request, call_next: Callable[[Request], Any]) -> Response:
        body = await request.body()
        path = request.url.path
        with emu.lock:
            emu.requests.append(
                RecordedRequest(
                    request.method,
                    path,
                    request.url.query,
                    {k.lower(): v for k, v in request.headers.items()},
                    body,
                )
            )
            fault = next((f for f in emu.faults if f.matches(request.method, path)), None)
            if fault is not None:
                fault.hits += 1
        family = _family(path)
        token = emu.tokens.get(family)
        if token is not None and request.headers.get("authorization") != f"Bearer {token}":
            if family == "nim":
                return _nim_error(401, "Unauthorized", "AuthenticationError")
            if family == "hf":
                return JSONResponse({"error": "Invalid credentials in Authorization header"}, status_code=401)
            return _error(401, "Not authenticated")
        if fault is not None:
            if fault.delay_s:
                await asyncio.sleep(fault.delay_s)
            if fault.status is not None:
                return JSONResponse(fault.body, status_code=fault.status)
        response: Response = await call_next(request)
        return response

    app.include_router(_entity_store(emu))
    app.include_router(_deployment_manager(emu))
    app.include_router(_customizer(emu))
    app.include_router(_data_store(emu), prefix="/datastore")
    app.include_router(_nim(emu), prefix="/nim")
    return app


def _family(path: str) -> str:
    """Which service a path belongs to, for its token: ``nim``, ``hf``, ``datastore`` or ``nemo``."""
    if path.startswith("/nim/"):
        return "nim"
    if path.startswith("/datastore/v1/hf/"):
        return "hf"
    return "datastore" if path.startswith("/datastore/") else "nemo"


def _entity_store(emu: NemoEmulator) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/namespaces")
    async def create_namespace(request: Request) -> Response:
        body = await _json(request)
        if (problem := _missing(body, "id")) is not None:
            return problem
        with emu.lock:
            if body["id"] in emu.namespaces:
                return _error(409, f"Namespace '{body['id']}' already exists.")
            now = _now()
            record = {
                "id": body["id"],
                "description": body.get("description"),
                "created_at": now,
                "updated_at": now,
                "custom_fields": body.get("custom_fields") or {},
                "project": body.get("project"),
            }
            emu.namespaces[body["id"]] = record
            emu.created["namespace"] += 1
        return JSONResponse(record, status_code=200)

    @router.get("/v1/namespaces")
    def list_namespaces(request: Request) -> Response:
        with emu.lock:
            return _page(request, list(emu.namespaces.values()))

    @router.get("/v1/namespaces/{namespace_id}")
    def get_namespace(namespace_id: str) -> Response:
        with emu.lock:
            record = emu.namespaces.get(namespace_id)
        return JSONResponse(record) if record else _error(404, f"Namespace '{namespace_id}' not found.")

    @router.delete("/v1/namespaces/{namespace_id}")
    def delete_namespace(namespace_id: str) -> Response:
        with emu.lock:
            if emu.namespaces.pop(namespace_id, None) is None:
                return _error(404, f"Namespace '{namespace_id}' not found.")
        return JSONResponse(
            {"id": namespace_id, "deleted_at": _now(), "message": "Resource deleted successfully."}
        )

    @router.post("/v1/datasets")
    async def create_dataset(request: Request) -> Response:
        body = await _json(request)
        if (problem := _missing(body, "files_url")) is not None:
            return problem
        namespace, name = body.get("namespace") or "default", body.get("name") or _entity_id("dataset")
        with emu.lock:
            if namespace not in emu.namespaces:
                return _error(404, f"Namespace '{namespace}' not found.")
            if (namespace, name) in emu.datasets:
                return _error(409, f"Dataset '{namespace}/{name}' already exists.")
            now = _now()
            record = {
                **body,
                "id": _entity_id("dataset"),
                "name": name,
                "namespace": namespace,
                "created_at": now,
                "updated_at": now,
            }
            emu.datasets[(namespace, name)] = record
            emu.created["dataset"] += 1
        return JSONResponse(record)

    @router.get("/v1/datasets")
    def list_datasets(request: Request) -> Response:
        with emu.lock:
            return _page(request, list(emu.datasets.values()))

    @router.get("/v1/datasets/{namespace}/{name}")
    def get_dataset(namespace: str, name: str) -> Response:
        with emu.lock:
            record = emu.datasets.get((namespace, name))
        return JSONResponse(record) if record else _error(404, f"Dataset '{namespace}/{name}' not found.")

    @router.patch("/v1/datasets/{namespace}/{name}")
    async def update_dataset(namespace: str, name: str, request: Request) -> Response:
        body = await _json(request) or {}
        with emu.lock:
            record = emu.datasets.get((namespace, name))
            if record is None:
                return _error(404, f"Dataset '{namespace}/{name}' not found.")
            record.update({k: v for k, v in body.items() if k not in ("id", "name", "namespace")})
            record["updated_at"] = _now()
            return JSONResponse(dict(record))

    @router.delete("/v1/datasets/{namespace}/{name}")
    def delete_dataset(namespace: str, name: str) -> Response:
        with emu.lock:
            record = emu.datasets.pop((namespace, name), None)
        if record is None:
            return _error(404, f"Dataset '{namespace}/{name}' not found.")
        return JSONResponse(
            {"id": record["id"], "deleted_at": _now(), "message": "Resource deleted successfully."}
        )

    @router.get("/v1/models")
    def list_models(request: Request) -> Response:
        with emu.lock:
            return _page(request, list(emu.models.values()))

    @router.get("/v1/models/{namespace}/{name}")
    def get_model(namespace: str, name: str) -> Response:
        with emu.lock:
            record = emu.models.get((namespace, name))
        return JSONResponse(record) if record else _error(404, f"Model '{namespace}/{name}' not found.")

    @router.delete("/v1/models/{namespace}/{name}")
    def delete_model(namespace: str, name: str) -> Response:
        with emu.lock:
            if emu.models.pop((namespace, name), None) is None:
                return _error(404, f"Model '{namespace}/{name}' not found.")
            emu._customized_ready.pop(f"{namespace}/{name}", None)
        return JSONResponse(
            {"id": f"{namespace}/{name}", "deleted_at": _now(), "message": "Resource deleted successfully."}
        )

    return router


def _deployment_manager(emu: NemoEmulator) -> APIRouter:
    router = APIRouter()
    base = "/v1/deployment/model-deployments"

    @router.post(base)
    async def create(request: Request) -> Response:
        body = await _json(request)
        if (problem := _missing(body, "name", "namespace", "config")) is not None:
            return problem
        config = body["config"]
        if isinstance(config, dict) and "nim_deployment" in config:
            nim = config["nim_deployment"] or {}
            gone = [k for k in ("gpu", "image_name", "image_tag") if nim.get(k) in (None, "")]
            if gone:
                return _error(
                    422,
                    [
                        {
                            "loc": ["body", "config", "nim_deployment", k],
                            "msg": "Field required",
                            "type": "missing",
                        }
                        for k in gone
                    ],
                )
        key = (body["namespace"], body["name"])
        with emu.lock:
            if key in emu.deployments:
                return _error(emu.deployment_conflict_status, "model deployment already exists")
            phases = emu._phases("deployment", body["name"])
            record = emu._deployment_record(body, phases[0].status)
            emu.deployments[key] = Deployment(record, Lifecycle(phases))
            emu.created["deployment"] += 1
            return JSONResponse(dict(record))

    @router.get(base)
    def list_deployments(request: Request) -> Response:
        with emu.lock:
            return _page(request, [d.record for d in emu.deployments.values()])

    @router.get(base + "/{namespace}/{name}")
    def get(namespace: str, name: str) -> Response:
        with emu.lock:
            deployment = emu.deployments.get((namespace, name))
            if deployment is None:
                return _error(404, f"Model deployment '{namespace}/{name}' not found")
            if emu.tick_on_read:
                emu._tick_deployment(deployment)
            return JSONResponse(json.loads(json.dumps(deployment.record)))

    @router.delete(base + "/{namespace}/{name}")
    def delete(namespace: str, name: str) -> Response:
        with emu.lock:
            if emu.deployments.pop((namespace, name), None) is None:
                return _error(404, f"Model deployment '{namespace}/{name}' not found")
            emu.created["deployment_deleted"] += 1
        return JSONResponse(
            {"id": f"{namespace}/{name}", "deleted_at": _now(), "message": "Resource deleted successfully."}
        )

    return router


def _customizer(emu: NemoEmulator) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/customization/configs")
    async def create_config(request: Request) -> Response:
        body = await _json(request)
        if (problem := _missing(body, "max_seq_length", "training_options")) is not None:
            return problem
        namespace, name = (
            body.get("namespace") or "default",
            body.get("name") or _entity_id("customization_config"),
        )
        with emu.lock:
            if (namespace, name) in emu.customization_configs:
                return _error(409, f"Customization config '{namespace}/{name}' already exists.")
            now = _now()
            record = {
                **body,
                "id": _entity_id("customization_config"),
                "name": name,
                "namespace": namespace,
                "created_at": now,
                "updated_at": now,
            }
            emu.customization_configs[(namespace, name)] = record
            emu.created["customization_config"] += 1
        return JSONResponse(record)

    @router.get("/v1/customization/configs")
    def list_configs(request: Request) -> Response:
        with emu.lock:
            return _page(request, list(emu.customization_configs.values()))

    @router.get("/v1/customization/configs/{namespace}/{name}")
    def get_config(namespace: str, name: str) -> Response:
        with emu.lock:
            record = emu.customization_configs.get((namespace, name))
        return (
            JSONResponse(record)
            if record
            else _error(404, f"Customization config '{namespace}/{name}' not found.")
        )

    @router.delete("/v1/customization/configs/{namespace}/{name}")
    def delete_config(namespace: str, name: str) -> Response:
        with emu.lock:
            if emu.customization_configs.pop((namespace, name), None) is None:
                return _error(404, f"Customization config '{namespace}/{name}' not found.")
        return JSONResponse(
            {"id": f"{namespace}/{name}", "deleted_at": _now(), "message": "Resource deleted successfully."}
        )

    @router.post("/v1/customization/jobs")
    async def create_job(request: Request) -> Response:
        body = await _json(request)
        if (problem := _missing(body, "config", "dataset", "hyperparameters")) is not None:
            return problem
        hyper = body["hyperparameters"]
        if not isinstance(hyper, dict) or not hyper.get("finetuning_type"):
            return _error(
                422,
                [
                    {
                        "loc": ["body", "hyperparameters", "finetuning_type"],
                        "msg": "Field required",
                        "type": "missing",
                    }
                ],
            )
        with emu.lock:
            config_ref = body["config"]
            config_key = tuple(config_ref.split("/", 1)) if isinstance(config_ref, str) else None
            if config_key is not None and config_key not in emu.customization_configs:
                return _error(404, f"Customization config '{config_ref}' not found.")
            dataset = body["dataset"]
            dataset_key = (
                (dataset.get("namespace") or "default", dataset.get("name"))
                if isinstance(dataset, dict)
                else tuple(dataset.split("/", 1))
            )
            record = emu.datasets.get(dataset_key)
            if record is None:
                return _error(404, f"Dataset '{'/'.join(map(str, dataset_key))}' not found.")
            train_records = _training_records(emu, record)
            batch = int(hyper.get("batch_size") or 8)
            epochs = int(hyper.get("epochs") or 1)
            steps_per_epoch = max(1, math.ceil(train_records / batch))
            total_steps = steps_per_epoch * epochs
            if hyper.get("max_steps"):
                total_steps = min(total_steps, int(hyper["max_steps"]))
            job_id = _entity_id("cust")
            namespace = body.get("namespace") or "default"
            output = body.get("output_model")
            if output and "@" not in output:
                output = f"{output}@{job_id}"
            now = _now()
            phases = emu._phases("customization", body.get("name"))
            job_record = {
                **body,
                "id": job_id,
                "namespace": namespace,
                "output_model": output,
                "status": phases[0].status,
                "created_at": now,
                "updated_at": now,
            }
            job = CustomizationJob(job_record, Lifecycle(phases), total_steps, steps_per_epoch, epochs)
            emu._update_job(job)
            emu.customization_jobs[job_id] = job
            emu.created["customization_job"] += 1
            return JSONResponse(_job_body(emu, job))

    @router.get("/v1/customization/jobs")
    def list_jobs(request: Request) -> Response:
        with emu.lock:
            return _page(request, [_job_body(emu, job) for job in emu.customization_jobs.values()])

    @router.get("/v1/customization/jobs/{job_id}")
    def get_job(job_id: str) -> Response:
        with emu.lock:
            job = emu.customization_jobs.get(job_id)
            if job is None:
                return _error(404, f"Customization job '{job_id}' not found.")
            return JSONResponse(_job_body(emu, job))

    @router.get("/v1/customization/jobs/{job_id}/status")
    def job_status(job_id: str) -> Response:
        with emu.lock:
            job = emu.customization_jobs.get(job_id)
            if job is None:
                return _error(404, f"Customization job '{job_id}' not found.")
            if emu.tick_on_read:
                emu._tick_job(job)
            return JSONResponse(emu._status_details(job))

    @router.post("/v1/customization/jobs/{job_id}/cancel")
    def cancel_job(job_id: str) -> Response:
        with emu.lock:
            job = emu.customization_jobs.get(job_id)
            if job is None:
                return _error(404, f"Customization job '{job_id}' not found.")
            status = job.lifecycle.status
            if status in ("completed", "failed", "cancelled"):
                return _error(409, f"Cannot cancel job '{job_id}' with status '{status}'.")
            if status != "cancelling":
                job.lifecycle.jump([Phase("cancelling", 1), Phase("cancelled", None, "Cancelled by user")])
                emu._update_job(job)
                emu.created["customization_cancel"] += 1
            return JSONResponse(_job_body(emu, job))

    return router


def _training_records(emu: NemoEmulator, dataset: dict[str, Any]) -> int:
    files_url = str(dataset.get("files_url") or "")
    match = re.fullmatch(r"hf://datasets/([^/]+)/([^/]+)/?", files_url)
    repo = emu.repos.get((match.group(1), match.group(2))) if match else None
    if repo is None:
        return 10
    lines = sum(
        len([line for line in content.splitlines() if line.strip()])
        for path, content in repo.files.items()
        if path.startswith("training/")
    )
    return lines or 10


def _job_body(emu: NemoEmulator, job: CustomizationJob) -> dict[str, Any]:
    return {**job.record, "status_details": emu._status_details(job)}


def _data_store(emu: NemoEmulator) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/datastore/namespaces")
    async def create_namespace(request: Request) -> Response:
        namespace: str | None = None
        if request.headers.get("content-type", "").startswith("application/json"):
            body = await _json(request)
            namespace = body.get("namespace") if isinstance(body, dict) else None
        else:
            form = await request.form()
            value = form.get("namespace")
            namespace = value if isinstance(value, str) else None
        if not namespace:
            return _error(422, [{"loc": ["body", "namespace"], "msg": "Field required", "type": "missing"}])
        with emu.lock:
            if namespace in emu.datastore_namespaces:
                return _error(409, f"namespace {namespace} already exists")
            record = {"namespace": namespace, "created_at": _now()}
            emu.datastore_namespaces[namespace] = record
            emu.created["datastore_namespace"] += 1
        return JSONResponse(record, status_code=201)

    @router.get("/v1/datastore/namespaces/{namespace}")
    def get_namespace(namespace: str) -> Response:
        with emu.lock:
            record = emu.datastore_namespaces.get(namespace)
        return JSONResponse(record) if record else _error(404, f"namespace {namespace} not found")

    @router.delete("/v1/datastore/namespaces/{namespace}")
    def delete_namespace(namespace: str) -> Response:
        with emu.lock:
            if emu.datastore_namespaces.pop(namespace, None) is None:
                return _error(404, f"namespace {namespace} not found")
        return Response(status_code=204)

    def hf_error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers={"X-Error-Message": message})

    def endpoint(request: Request) -> str:
        return str(request.base_url).rstrip("/") + "/datastore/v1/hf"

    @router.post("/v1/hf/api/repos/create")
    async def create_repo(request: Request) -> Response:
        body = await _json(request) or {}
        organization, name, kind = body.get("organization"), body.get("name"), body.get("type") or "model"
        if not organization or not name:
            return hf_error(400, "name and organization are required")
        if kind != "dataset":
            return hf_error(400, f"repository type {kind!r} is not supported by the Data Store")
        with emu.lock:
            if organization not in emu.datastore_namespaces:
                return hf_error(404, f"namespace {organization} not found")
            if (organization, name) in emu.repos:  # the Hub's 409 names the repo's URL too
                message = "You already created this dataset repo"
                url = f"{endpoint(request)}/datasets/{organization}/{name}"
                return JSONResponse(
                    {"error": message, "url": url}, status_code=409, headers={"X-Error-Message": message}
                )
            emu.repos[(organization, name)] = Repo()
            emu.created["repo"] += 1
        return JSONResponse({"url": f"{endpoint(request)}/datasets/{organization}/{name}"})

    @router.delete("/v1/hf/api/repos/delete")
    async def delete_repo(request: Request) -> Response:
        body = await _json(request) or {}
        key = (body.get("organization"), body.get("name"))
        with emu.lock:
            if emu.repos.pop(key, None) is None:
                return hf_error(404, "Repository not found")
        return Response(status_code=200)

    @router.get("/v1/hf/api/datasets/{namespace}/{name}")
    @router.get("/v1/hf/api/datasets/{namespace}/{name}/revision/{revision}")
    def repo_info(namespace: str, name: str, revision: str = "main") -> Response:
        with emu.lock:
            repo = emu.repos.get((namespace, name))
            if repo is None:
                return hf_error(404, "Repository not found")
            return JSONResponse(
                {
                    "id": f"{namespace}/{name}",
                    "author": namespace,
                    "sha": repo.commits[-1] if repo.commits else "0" * 40,
                    "private": False,
                    "siblings": [
                        {"rfilename": path, "size": len(content), "blobId": _git_oid(content)}
                        for path, content in sorted(repo.files.items())
                    ],
                }
            )

    @router.post("/v1/hf/api/datasets/{namespace}/{name}/preupload/{revision}")
    async def preupload(namespace: str, name: str, revision: str, request: Request) -> Response:
        body = await _json(request) or {}
        with emu.lock:
            repo = emu.repos.get((namespace, name))
        if repo is None:
            return hf_error(404, "Repository not found")
        if revision != "main":
            return hf_error(404, f"Revision not found: {revision}")
        files = [
            {
                "path": f["path"],
                "uploadMode": "regular",
                "shouldIgnore": False,
                "oid": _git_oid(repo.files[f["path"]]) if f["path"] in repo.files else None,
            }
            for f in body.get("files") or []
        ]
        return JSONResponse({"files": files, "commitOid": repo.commits[-1] if repo.commits else None})

    @router.post("/v1/hf/api/datasets/{namespace}/{name}/commit/{revision}")
    async def commit(namespace: str, name: str, revision: str, request: Request) -> Response:
        raw = (await request.body()).decode()
        try:
            lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
        except ValueError:
            return hf_error(400, "commit payload is not valid NDJSON")
        if not lines or lines[0].get("key") != "header":
            return hf_error(400, "commit payload must start with a header line")
        with emu.lock:
            repo = emu.repos.get((namespace, name))
            if repo is None:
                return hf_error(404, "Repository not found")
            for line in lines[1:]:
                value = line.get("value") or {}
                if line.get("key") == "file" and value.get("encoding") == "base64":
                    repo.files[value["path"]] = base64.b64decode(value["content"])
                elif line.get("key") == "deletedFile":
                    repo.files.pop(value["path"], None)
                else:
                    return hf_error(400, f"unsupported commit operation {line.get('key')!r}")
            oid = hashlib.sha1(f"{len(repo.commits)}:{raw}".encode()).hexdigest()
            repo.commits.append(oid)
            emu.created["commit"] += 1
        return JSONResponse(
            {
                "commitUrl": f"{endpoint(request)}/datasets/{namespace}/{name}/commit/{oid}",
                "commitOid": oid,
                "pullRequestUrl": None,
            }
        )

    return router


def _git_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _nim(emu: NemoEmulator) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/models")
    def models() -> Response:
        served = emu.served_models(read=True)
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 0, "owned_by": "system", "root": m}
                    for m in served
                ],
            }
        )

    @router.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await _json(request)
        if not isinstance(body, dict) or not body.get("messages"):
            return _nim_error(400, "messages is required", "BadRequestError")
        if body.get("model") not in emu.served_models():
            return _nim_error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
        return JSONResponse(emu.chat_script(body))

    @router.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        body = await _json(request)
        if not isinstance(body, dict) or body.get("input") in (None, "", []):
            return _nim_error(400, "input is required", "BadRequestError")
        model = body.get("model")
        if model not in emu.served_models():
            return _nim_error(404, f"The model `{model}` does not exist.", "NotFoundError")
        input_type = body.get("input_type")
        if model in emu.asymmetric_embedding_models and input_type not in ("query", "passage"):
            return _nim_error(
                400,
                "Input type must be either 'query' or 'passage' for asymmetric models (input_type was "
                f"{input_type!r})",
                "BadRequestError",
            )
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"index": i, "object": "embedding", "embedding": embedding_of(str(t), input_type)}
            for i, t in enumerate(texts)
        ]
        tokens = sum(len(str(t).split()) for t in texts)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    return router


# ------------------------------------------------------------------------------------------------ serving


class FakeClock:
    """Time for the code under test that passes only when it sleeps (pass ``clock=`` this, ``sleep=`` its
    :meth:`sleep`), so an hour's stall timeout costs no real time; ``sleeps`` lists every wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass(frozen=True)
class EmulatorURLs:
    """Where the served emulator answers: the blueprint's ``nmp_config`` URLs."""

    nemo_base_url: str
    nim_base_url: str
    datastore_base_url: str


@contextmanager
def serve_emulator(emu: NemoEmulator | None = None) -> Iterator[tuple[NemoEmulator, EmulatorURLs]]:
    """Serve an emulator (a new one unless given) on a free loopback port until the block ends."""
    emu = emu or NemoEmulator()
    with serve(create_app(emu)) as base:
        yield emu, EmulatorURLs(base, f"{base}/nim", f"{base}/datastore")
