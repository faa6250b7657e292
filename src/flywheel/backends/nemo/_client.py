"""Where the NeMo platform is, and the one HTTP client every part of the ``nemo`` backend talks to it through.

What speaks to which service:

* **Entity Store, Deployment Manager, Customizer** (``nemo_base_url``): the official ``nemo-microservices`` SDK
  (:class:`nemo_microservices.NeMoMicroservices`). Its own retries are switched off (it would retry a 409 and
  re-send a job creation); :meth:`PlatformClient.call` retries what is safe to retry, once, here.
* **Data Store namespaces** (``datastore_base_url``): plain ``httpx``; the SDK does not cover them.
* **Data Store files**: ``huggingface_hub`` pointed at ``{datastore_base_url}/v1/hf`` (see ``_datasets``).
* **NIM proxy** (``nim_base_url``): plain ``httpx`` for ``/v1/models``; chat completions and embeddings go through
  the OpenAI-compatible backend (``flywheel.backends.openai_compat``), which the SDK does not beat.

Every failure leaves as a :class:`PlatformError` (a :class:`~flywheel.errors.BackendError`) that names the
service, the call, the HTTP status and the platform's ``detail``. Keys travel only in ``Authorization`` headers,
added by an ``httpx`` auth hook when a request is sent, so neither the SDK's nor httpx's logging sees them, and no
message includes them; URLs are shown with :func:`~flywheel.config.redact_url`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from flywheel.config import redact_url
from flywheel.config._models import NMPConfig
from flywheel.errors import BackendError, ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from nemo_microservices import NeMoMicroservices

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Statuses worth another attempt of a call that is safe to repeat.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_MAX_DETAIL = 300

#: Environment variables read when no ``nmp_config`` is given (same names as its keys, upper case).
ENV_NAMES = {
    "nemo_base_url": "NEMO_BASE_URL",
    "nim_base_url": "NIM_BASE_URL",
    "datastore_base_url": "DATASTORE_BASE_URL",
    "nmp_namespace": "NMP_NAMESPACE",
}
#: The platform's bearer token (sent to the Entity Store, Deployment Manager, Customizer, Data Store namespaces
#: and the NIM proxy), when the platform sits behind an authenticating ingress.
API_KEY_ENV = "NMP_API_KEY"
#: The token sent to the Data Store's Hugging Face API (the reference's ``HF_TOKEN``, default ``"nothing"``).
HF_TOKEN_ENV = "HF_TOKEN"


class PlatformError(BackendError):
    """A call to the NeMo platform failed; ``status_code`` is the HTTP status (``None``: no answer)."""

    def __init__(self, message: str, status_code: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail


@dataclass(frozen=True)
class PlatformEndpoints:
    """Where the platform's services are (the blueprint's ``nmp_config``) and the secrets sent to them."""

    nemo_base_url: str
    nim_base_url: str
    datastore_base_url: str
    namespace: str = "dfwbp"
    api_key: str | None = field(default=None, repr=False)
    hf_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_config(cls, nmp: NMPConfig, env: Mapping[str, str]) -> PlatformEndpoints:
        """From ``nmp_config``, the URLs and namespace it does not set from the environment (:data:`ENV_NAMES`),
        secrets from ``env``."""
        values = {
            key: getattr(nmp, key) or env.get(name) or None
            for key, name in ENV_NAMES.items()
            if key != "nmp_namespace"
        }
        missing = [key for key, value in values.items() if not value]
        if missing:
            raise ConfigError(
                "The nemo backend needs the NeMo platform's URLs; set "
                + ", ".join(f"nmp_config.{key} (or ${ENV_NAMES[key]})" for key in missing)
                + ".",
                problems=[(f"nmp_config.{key}", "required for backend nemo") for key in missing],
            )
        return cls(
            nemo_base_url=str(values["nemo_base_url"]).rstrip("/"),
            nim_base_url=str(values["nim_base_url"]).rstrip("/"),
            datastore_base_url=str(values["datastore_base_url"]).rstrip("/"),
            # a namespace the file does not set may come from the environment, like the URLs
            namespace=nmp.nmp_namespace
            if "nmp_namespace" in nmp.model_fields_set
            else env.get(ENV_NAMES["nmp_namespace"]) or nmp.nmp_namespace,
            api_key=env.get(API_KEY_ENV) or None,
            hf_token=env.get(HF_TOKEN_ENV) or None,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PlatformEndpoints:
        """From the environment alone (:data:`ENV_NAMES`, :data:`API_KEY_ENV`, :data:`HF_TOKEN_ENV`)."""
        namespace = env.get(ENV_NAMES["nmp_namespace"]) or NMPConfig.model_fields["nmp_namespace"].default
        return cls.from_config(NMPConfig(nmp_namespace=namespace), env)

    @property
    def nim_v1(self) -> str:
        """The NIM proxy's OpenAI-compatible root, ``{nim_base_url}/v1``."""
        return self.nim_base_url if self.nim_base_url.endswith("/v1") else f"{self.nim_base_url}/v1"

    @property
    def hf_endpoint(self) -> str:
        """The Data Store's Hugging Face API, ``{datastore_base_url}/v1/hf``."""
        return f"{self.datastore_base_url}/v1/hf"


class _BearerAuth(httpx.Auth):
    """Adds the bearer token as each request is sent (so it is in no options object that a client logs)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "_BearerAuth(***)"


def _detail(body: Any, text: str) -> str:
    """The platform's error ``detail`` (``{"detail": str | [{loc, msg}]}``, or an OpenAI/HF ``error``), short."""
    value: Any = body
    if isinstance(body, dict):
        value = body.get("detail", body.get("error", body.get("message", body)))
        if isinstance(value, dict):
            value = value.get("message", value)
    if isinstance(value, list):
        parts = []
        for item in value:
            if isinstance(item, dict) and "msg" in item:
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{loc}: {item['msg']}" if loc else str(item["msg"]))
            else:
                parts.append(str(item))
        value = "; ".join(parts)
    shown = str(value) if value not in (None, "") else text
    return shown[:_MAX_DETAIL]


class PlatformClient:
    """HTTP access to one NeMo platform, with retries and error translation in one place.

    Args:
        endpoints: Where the services are, and the keys.
        timeout_s: Timeout of one HTTP attempt, in seconds.
        max_retries: Further attempts of a call that is safe to repeat, on 408/429/5xx and connection errors.
        backoff_s: First delay between attempts; doubles each time (with jitter), at most 30 s.
        sleep: How to wait between attempts (tests pass a recorder).
        transport: An ``httpx`` transport for every client (tests, custom networking).
    """

    def __init__(
        self,
        endpoints: PlatformEndpoints,
        *,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._transport = transport
        self._sdk: NeMoMicroservices | None = None
        auth = _BearerAuth(endpoints.api_key) if endpoints.api_key else None
        self.http = httpx.Client(timeout=httpx.Timeout(timeout_s), auth=auth, transport=transport)

    def __repr__(self) -> str:
        return f"PlatformClient({redact_url(self.endpoints.nemo_base_url)!r})"

    # ------------------------------------------------------------------------------------------------- clients

    @property
    def sdk(self) -> NeMoMicroservices:
        """The SDK client for the Entity Store, Deployment Manager and Customizer (its retries off)."""
        if self._sdk is None:
            try:
                from nemo_microservices import NeMoMicroservices
            except ImportError as exc:
                raise MissingDependencyError("nemo-microservices", "nemo") from exc
            auth = _BearerAuth(self.endpoints.api_key) if self.endpoints.api_key else None
            self._sdk = NeMoMicroservices(
                base_url=self.endpoints.nemo_base_url,
                inference_base_url=self.endpoints.nim_base_url,
                max_retries=0,
                timeout=self.timeout_s,
                http_client=httpx.Client(
                    timeout=httpx.Timeout(self.timeout_s), auth=auth, transport=self._transport
                ),
            )
        return self._sdk

    def close(self) -> None:
        """Close the connection pools."""
        self.http.close()
        if self._sdk is not None:
            self._sdk.close()

    # ------------------------------------------------------------------------------------------------- calls

    def call(self, what: str, fn: Callable[[], T], *, retry: bool = True) -> T:
        """Run ``fn`` (an SDK call, an httpx request that raises for status, or a Hugging Face API call),
        translating its failures into :class:`PlatformError`; ``what`` names it in messages ("create deployment
        ns/name"). With ``retry``, 408/429/5xx and connection failures are tried again up to ``max_retries``
        times; a call that must not run twice (a job creation) passes ``retry=False``."""
        attempts = self.max_retries + 1 if retry else 1
        for attempt in range(attempts):
            try:
                return fn()
            except Exception as exc:
                error = self._translate(what, exc)
                if error is None:
                    raise
                retryable = error.status_code is None or error.status_code in RETRYABLE_STATUSES
                if not retryable or attempt == attempts - 1:
                    raise error from exc
                delay = min(self.backoff_s * 2**attempt * random.uniform(0.5, 1.0), 30.0)
                logger.info(
                    "NeMo %s failed (%s); retry %d/%d in %.2fs", what, error, attempt + 1, attempts - 1, delay
                )
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def get_json(self, what: str, url: str, *, retry: bool = True) -> Any:
        """``GET url`` through :meth:`call`; the JSON body."""

        def get() -> Any:
            response = self.http.get(url)
            response.raise_for_status()
            return response.json()

        return self.call(what, get, retry=retry)

    def served_models(self) -> list[str]:
        """The model ids the NIM proxy serves (``GET {nim_base_url}/v1/models``)."""
        body = self.get_json("list NIM models", f"{self.endpoints.nim_v1}/models")
        return [str(item.get("id")) for item in (body or {}).get("data") or [] if isinstance(item, dict)]

    def _translate(self, what: str, exc: Exception) -> PlatformError | None:
        """``exc`` as a :class:`PlatformError`, or ``None`` when it is not a transport or HTTP failure.

        Duck-typed: the SDK raises on ``httpx`` responses, ``huggingface_hub`` on those of its own httpx fork.
        """
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(status, int):
            try:
                url = str(response.request.url)  # type: ignore[union-attr]
            except (AttributeError, RuntimeError):
                url = ""
            text = str(getattr(response, "text", ""))
            try:
                body = response.json()  # type: ignore[union-attr]
            except (ValueError, AttributeError):
                body = None
            detail = _detail(body, text)
            return PlatformError(
                f"NeMo platform: {what} failed with HTTP {status} from {redact_url(url)}: {detail}",
                status,
                detail,
            )
        names = {cls.__name__ for cls in type(exc).__mro__}
        if not names & {"TransportError", "APIConnectionError"}:
            return None
        try:
            url = str(exc.request.url)  # type: ignore[attr-defined]
        except (AttributeError, RuntimeError):
            url = ""
        reason = "timed out" if names & {"TimeoutException", "APITimeoutError"} else "could not connect"
        shown = f" at {redact_url(url)}" if url else ""
        return PlatformError(
            f"NeMo platform: {what} {reason}{shown} ({type(exc).__name__}); check that the service is up and "
            "the nmp_config URLs are right.",
            None,
        )
