"""Chat generation against any OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM, NIM, Ollama, OpenAI).

One :class:`OpenAICompatBackend` serves a candidate or a judge. Requests run concurrently (a thread pool bounded by
``max_concurrency``), each with its own timeout; 429, 5xx, connection errors and timeouts are retried with
exponential backoff that honours ``Retry-After``. A request that still fails becomes ``Generation(error=...)`` so one
bad prompt never sinks a batch. The API key only ever travels in the ``Authorization`` header; it is never logged
and never appears in an error message.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from flywheel.backends._types import ChatRequest, Generation, Message
from flywheel.config import redact_url

logger = logging.getLogger(__name__)

#: HTTP statuses worth another try: rate limiting and server-side failures.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
_MAX_ERROR_BODY = 300


def chat_completions_url(base_url: str) -> str:
    """The full chat-completions URL for a base URL given in any of the usual forms.

    ``http://h:8000`` → ``http://h:8000/v1/chat/completions``; ``http://h:8000/v1`` → ``…/v1/chat/completions``;
    a URL already ending in ``/chat/completions`` (the reference's ``llm_judge_config.url``) is used as is.
    """
    url = base_url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    if url.endswith("/v1"):
        return url + "/chat/completions"
    return url + "/v1/chat/completions"


def _retry_after_s(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); ``None`` if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _outgoing_messages(messages: Sequence[Message]) -> list[Message]:
    """Messages as the OpenAI protocol wants them: tool-call arguments JSON-encoded strings, not objects.

    Logged eval records keep arguments as parsed objects (the reference's format); endpoints reject those.
    """
    out: list[Message] = []
    for message in messages:
        calls = message.get("tool_calls")
        if not calls:
            out.append(message)
            continue
        fixed_calls = []
        for call in calls:
            function = dict(call.get("function") or {})
            if not isinstance(function.get("arguments"), str):
                function["arguments"] = json.dumps(function.get("arguments") or {})
            fixed_calls.append({**call, "function": function})
        out.append({**message, "tool_calls": fixed_calls})
    return out


def _parse_tool_calls(raw: Any) -> list[dict[str, Any]] | None:
    """Tool calls from a response message in the OpenAI shape ``{id, type, function: {name, arguments: str}}``."""
    if not raw:
        return None
    calls: list[dict[str, Any]] = []
    for i, call in enumerate(raw):
        if not isinstance(call, Mapping):
            continue
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {})
        calls.append(
            {
                "id": call.get("id") or f"call_{i}",
                "type": call.get("type") or "function",
                "function": {"name": function.get("name") or "", "arguments": arguments},
            }
        )
    return calls or None


class OpenAICompatBackend:
    """An :class:`~flywheel.backends.InferenceBackend` over an OpenAI-compatible chat-completions endpoint.

    Args:
        base_url: The server (``http://host:8000``), its ``/v1`` root, or the full ``…/chat/completions`` URL.
        model: The ``model`` field sent with every request.
        api_key: Sent as ``Authorization: Bearer …`` when given. Never logged.
        max_concurrency: Requests in flight at once.
        timeout_s: Timeout of one HTTP attempt, in seconds.
        max_retries: Further attempts after the first on 429, 5xx, connection errors and timeouts.
        backoff_s: First backoff delay; doubles each retry (with jitter), capped at ``max_backoff_s``.
        max_backoff_s: Longest wait between attempts, also the cap applied to ``Retry-After``.
        extra_body: Extra JSON fields merged into every request body (e.g. ``{"top_p": 1}``).
        tool_choice: Sent as ``tool_choice`` with requests that carry tools (the reference evaluates tool calling
            with ``"required"``); ``None`` leaves the server's default.
        headers: Extra HTTP headers.
        transport: An ``httpx`` transport, for tests or custom networking.
        sleep: The function used to wait between retries (tests record the delays instead of sleeping).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        max_concurrency: int = 8,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        *,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        extra_body: Mapping[str, Any] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.model = model
        self.name = model
        # Credentials in the URL become Basic auth, so no URL that is sent, logged (httpx logs every request
        # line) or put in a message carries them.
        url = httpx.URL(chat_completions_url(base_url))
        basic = (url.username, url.password) if url.username or url.password else None
        self.url = str(url.copy_with(username=None, password=None)) if basic else str(url)
        self._shown_url = redact_url(self.url)
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.extra_body = dict(extra_body or {})
        self.tool_choice = tool_choice
        self._sleep = sleep
        self._rng = random.Random()
        self._rng_lock = threading.Lock()
        all_headers = {"Content-Type": "application/json", **dict(headers or {})}
        if api_key:
            all_headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(
            headers=all_headers,
            auth=basic if basic and not api_key else None,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
        )

    def __repr__(self) -> str:  # never include the key
        return f"OpenAICompatBackend(url={self._shown_url!r}, model={self.model!r})"

    def __enter__(self) -> OpenAICompatBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------------- public API

    def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        """One :class:`Generation` per request, in order; failures are returned as ``Generation(error=...)``."""
        if not requests:
            return []
        if len(requests) == 1 or self.max_concurrency == 1:
            return [self._generate_one(r) for r in requests]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(requests))) as pool:
            return list(pool.map(self._generate_one, requests))

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    # ------------------------------------------------------------------------------------------------- internals

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": _outgoing_messages(request.messages),
            "temperature": request.temperature,
        }
        if request.tools:
            body["tools"] = request.tools
            if self.tool_choice is not None:
                body["tool_choice"] = self.tool_choice
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.stop:
            body["stop"] = request.stop
        body.update(self.extra_body)
        return body

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff_s)
        with self._rng_lock:
            jitter = self._rng.uniform(0.5, 1.0)
        return min(self.backoff_s * (2**attempt) * jitter, self.max_backoff_s)

    def _generate_one(self, request: ChatRequest) -> Generation:
        # latency_s is the successful attempt's round trip (model speed), not including retries and backoff.
        body = self._body(request)
        last_error = "no attempt made"
        for attempt in range(self.max_retries + 1):
            retry_after: float | None = None
            started = time.perf_counter()
            try:
                response = self._client.post(self.url, json=body)
            except httpx.TimeoutException as exc:
                last_error = f"timed out after {self.timeout_s:g}s ({type(exc).__name__})"
            except httpx.TransportError as exc:
                last_error = f"connection failed: {type(exc).__name__}: {exc}"
            else:
                latency = time.perf_counter() - started
                if response.status_code == 200:
                    return self._parse(response, latency)
                snippet = response.text[:_MAX_ERROR_BODY]
                last_error = f"HTTP {response.status_code} from {self._shown_url}: {snippet}"
                if response.status_code not in RETRYABLE_STATUSES:
                    return Generation(content=None, error=last_error, latency_s=latency)
                retry_after = _retry_after_s(response.headers.get("retry-after"))
            if attempt < self.max_retries:
                delay = self._backoff(attempt, retry_after)
                logger.info(
                    "chat request to %s failed (%s); retry %d/%d in %.2fs",
                    self._shown_url,
                    last_error[:120],
                    attempt + 1,
                    self.max_retries,
                    delay,
                )
                self._sleep(delay)
        return Generation(content=None, error=f"{last_error} (after {self.max_retries + 1} attempts)")

    def _parse(self, response: httpx.Response, latency: float) -> Generation:
        try:
            payload = response.json()
            choice = payload["choices"][0]
            message = choice.get("message") or {}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            return Generation(
                content=None,
                error=f"unreadable response from {self._shown_url}: {type(exc).__name__}: {response.text[:_MAX_ERROR_BODY]}",
                latency_s=latency,
            )
        usage = payload.get("usage") or {}
        content = message.get("content")
        return Generation(
            content=content,
            tool_calls=_parse_tool_calls(message.get("tool_calls")),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            latency_s=latency,
            raw_text=content,
        )
