"""LLM judges: any inference backend plus a scorer (a prompt template and a reply parser).

A judge never raises because of what the model wrote: an empty, failed or unparseable reply is a *no grade* with an
explanation, kept with the sample and counted in the report. The prompt sent and the raw reply are kept per sample.
Concurrency and retries belong to the backend (see :class:`~flywheel.backends.openai_compat.OpenAICompatBackend`);
the judge sends one batch per metric.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from flywheel.backends._types import ChatRequest, EndpointOptions, InferenceBackend, Message
from flywheel.backends.registry import build_inference_backend
from flywheel.config import LLMJudgeConfig, NIMConfig
from flywheel.config._models import NMPConfig
from flywheel.errors import ConfigError
from flywheel.pipeline.evaluate._answers import Answer

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class JudgeItem:
    """What a judge sees for one sample: the task, the teacher's (reference) answer and the candidate's answer."""

    prompt: list[Message]
    reference: Answer
    candidate: Answer
    tools: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Grade:
    """A parsed judge reply. ``score`` in [0, 1], or ``None`` for no grade (``explanation`` says why)."""

    score: float | None
    raw_grade: float | None = None
    explanation: str | None = None


@dataclass
class JudgeTranscript:
    """One judge exchange, kept with the sample as evidence."""

    metric: str
    messages: list[Message] | None
    reply: str | None
    score: float | None
    raw_grade: float | None = None
    explanation: str | None = None
    judge_model: str | None = None
    decided_without_judge: bool = False

    @property
    def graded(self) -> bool:
        """Whether this exchange produced a score."""
        return self.score is not None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (prompt messages, raw reply, grade, explanation)."""
        return {
            "metric": self.metric,
            "judge_model": self.judge_model,
            "messages": self.messages,
            "reply": self.reply,
            "raw_grade": self.raw_grade,
            "score": self.score,
            "explanation": self.explanation,
            "decided_without_judge": self.decided_without_judge,
        }


class Scorer(Protocol):
    """Turns a sample into judge messages and the judge's reply into a :class:`Grade`."""

    @property
    def metric(self) -> str:
        """The metric key this scorer fills (e.g. ``similarity``)."""
        ...

    def build_messages(self, item: JudgeItem) -> list[Message]:
        """The chat messages sent to the judge."""
        ...

    def parse(self, reply: str) -> Grade:
        """The grade in ``reply``, or a no-grade :class:`Grade` with an explanation."""
        ...


# ----------------------------------------------------------------------------------------------------- rendering


def render_task(messages: Sequence[Message]) -> str:
    """The conversation as plain text (``ROLE: content`` blocks, tool calls as JSON), for judge prompts."""
    blocks = []
    for message in messages:
        role = str(message.get("role", "user")).upper()
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        text = "" if content is None else str(content)
        if message.get("tool_calls"):
            text = (
                (text + "\n" if text else "")
                + "tool_calls: "
                + json.dumps(message["tool_calls"], default=str)
            )
        blocks.append(f"{role}: {text}")
    return "\n\n".join(blocks)


def render_tool_calls(calls: Sequence[dict[str, Any]] | None) -> str:
    """Tool calls as ``[{"name", "arguments"}]`` JSON (arguments decoded when they are a JSON string); ``null`` if none."""
    if not calls:
        return "null"
    out = []
    for call in calls:
        function: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else call
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            with contextlib.suppress(ValueError):
                arguments = json.loads(arguments)
        out.append({"name": function.get("name"), "arguments": arguments})
    return json.dumps(out, ensure_ascii=False, indent=1)


# ----------------------------------------------------------------------------------------------------- similarity

SIMILARITY_SYSTEM_PROMPT = """You are an expert evaluator. You are given a task, a reference answer and a candidate \
answer. Rate how similar in meaning the candidate answer is to the reference answer, on an integer scale from 1 to 10:

10: nearly identical in meaning; every key point matches.
8-9: the same key information, with minor differences in wording, detail or completeness.
6-7: roughly overlapping; some key information is missing or differs.
4-5: mostly different or partly wrong, with a little overlap.
2-3: largely irrelevant to the reference or contradicts it.
1: irrelevant, wrong or empty.

Reply with the integer only."""

_FRACTION = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*(?:/|out\s+of)\s*10(?![\d.])", re.IGNORECASE)
_LABELLED = re.compile(
    r"\b(?:rating|score|similarity|grade)\b[^\d\n]{0,12}?(\d+(?:\.\d+)?)(?![\d.]*\s*/\s*\d)", re.IGNORECASE
)
_BARE = re.compile(r"^\W*(\d+(?:\.\d+)?)\W*$")
_INTEGERS = re.compile(r"(?<![\w.])(\d+)(?!\w|\.\d)")


def parse_similarity(reply: str | None) -> Grade:
    """A 1–10 similarity rating in ``reply``, normalised to ``rating / 10``.

    Reads ``"10"``, ``"7"``, ``"Rating: 7/10"``, ``"**8**"``, ``"score: 9"``, ``"I'd say 6 out of 10"``, or a reply
    with exactly one integer in 1–10. Anything else, or a number outside 1–10, is a no grade.
    """
    if reply is None or not reply.strip():
        return Grade(None, explanation="empty judge reply")
    text = reply.strip()
    value: float | None = None
    for pattern in (_FRACTION, _LABELLED, _BARE):
        match = pattern.search(text)
        if match:
            value = float(match.group(1))
            break
    if value is None:
        candidates = {int(m) for m in _INTEGERS.findall(text) if 1 <= int(m) <= 10}
        if len(candidates) == 1:
            value = float(candidates.pop())
        elif len(candidates) > 1:
            return Grade(None, explanation=f"ambiguous judge reply: several numbers {sorted(candidates)}")
    if value is None:
        return Grade(None, explanation="no 1–10 rating found in the judge reply")
    if not 1.0 <= value <= 10.0:
        return Grade(None, raw_grade=value, explanation=f"rating {value:g} is outside the 1–10 scale")
    return Grade(value / 10.0, raw_grade=value)


@dataclass(frozen=True)
class SimilarityScorer:
    """``similarity``: the judge rates the candidate against the teacher's answer on 1–10; score = rating / 10."""

    metric: str = "similarity"
    system_prompt: str = SIMILARITY_SYSTEM_PROMPT

    def build_messages(self, item: JudgeItem) -> list[Message]:
        """System rubric plus a user message with the task, reference and candidate."""
        user = (
            f"## Task\n{render_task(item.prompt)}\n\n"
            f"## Reference answer\n{item.reference.content or ''}\n\n"
            f"## Candidate answer\n{item.candidate.content or ''}\n\n"
            "Rate the similarity (1-10). Reply with the integer only."
        )
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": user}]

    def parse(self, reply: str) -> Grade:
        """See :func:`parse_similarity`."""
        return parse_similarity(reply)


# ----------------------------------------------------------------------------------------------------- tool calls

TOOL_CALL_SYSTEM_PROMPT = """You are an expert evaluator of function calls. Compare a ground-truth tool call with a \
predicted tool call for the same conversation and decide whether the prediction is correct.

Rules:
1. If the prediction is null, empty or not a valid tool call, it is incorrect.
2. The function name must match the ground truth exactly.
3. The arguments must be valid JSON (or a string that parses as JSON).
4. Every argument in the ground truth must be present in the prediction and match:
   - short identifier-like values (ids, codes, enums, numbers, dates, names of things) must match exactly;
   - long natural-language values (queries, descriptions, messages) must match in meaning; wording may differ.
5. When there are several calls, every ground-truth call must have a matching predicted call; order does not matter.

Answer in exactly this format:
RATING: <0 or 1>
EXPLANATION: <one or two sentences>"""

_RATING = re.compile(r"rating\W{0,4}([0-9]+(?:\.[0-9]+)?)", re.IGNORECASE)


def parse_binary_rating(reply: str | None) -> Grade:
    """A ``RATING: 0|1`` verdict (a reply that is only ``0`` or ``1`` is accepted too); anything else is a no grade."""
    if reply is None or not reply.strip():
        return Grade(None, explanation="empty judge reply")
    text = reply.strip()
    match = _RATING.search(text) or _BARE.search(text)
    if not match:
        return Grade(None, explanation="no 'RATING: 0|1' in the judge reply")
    value = float(match.group(1))
    if value not in (0.0, 1.0):
        return Grade(None, raw_grade=value, explanation=f"rating {value:g} is not 0 or 1")
    return Grade(value, raw_grade=value, explanation=_explanation(text))


def _explanation(text: str) -> str | None:
    match = re.search(r"explanation\W{0,3}(.+)", text, re.IGNORECASE | re.DOTALL)
    return match.group(1).strip()[:1000] if match else None


@dataclass(frozen=True)
class ToolCallCorrectnessScorer:
    """``tool_calling_correctness``: the judge decides 0/1 whether the candidate's tool calls match the teacher's."""

    metric: str = "tool_calling_correctness"
    system_prompt: str = TOOL_CALL_SYSTEM_PROMPT

    def build_messages(self, item: JudgeItem) -> list[Message]:
        """System rules plus a user message with the conversation, the ground truth and the prediction."""
        user = (
            f"## Conversation\n{render_task(item.prompt)}\n\n"
            f"## Ground-truth tool calls\n{render_tool_calls(item.reference.tool_calls)}\n\n"
            f"## Predicted tool calls\n{render_tool_calls(item.candidate.tool_calls)}"
        )
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": user}]

    def parse(self, reply: str) -> Grade:
        """See :func:`parse_binary_rating`."""
        return parse_binary_rating(reply)


# ----------------------------------------------------------------------------------------------------- judge


@dataclass
class Judge:
    """An inference backend used as a judge.

    Args:
        backend: Any :class:`~flywheel.backends.InferenceBackend`; for remote judges an ``OpenAICompatBackend``,
            which brings the concurrency limit and the retries on 429/5xx.
        model_name: The judge model's name, used to warn when it is also the candidate under test.
        max_tokens: Reply budget per judge call.
    """

    backend: InferenceBackend
    model_name: str | None = None
    max_tokens: int = 512
    calls: int = field(default=0, init=False)

    def grade(self, scorer: Scorer, items: Sequence[JudgeItem]) -> list[JudgeTranscript]:
        """One transcript per item, in order. Never raises for a bad reply or a failed call."""
        if not items:
            return []
        prompts = [scorer.build_messages(item) for item in items]
        requests = [ChatRequest(messages=m, max_tokens=self.max_tokens, temperature=0.0) for m in prompts]
        try:
            generations = self.backend.generate(requests)
        except Exception as exc:  # a backend that raises instead of returning errors: still no crash
            logger.warning("judge backend failed for %d %s calls: %s", len(items), scorer.metric, exc)
            reason = f"judge call failed: {type(exc).__name__}: {exc}"
            return [
                JudgeTranscript(scorer.metric, m, None, None, None, reason, self.model_name) for m in prompts
            ]
        self.calls += len(requests)
        out = []
        for messages, generation in zip(prompts, generations, strict=True):
            if generation.error:
                out.append(
                    JudgeTranscript(
                        scorer.metric,
                        messages,
                        None,
                        None,
                        None,
                        f"judge call failed: {generation.error}",
                        self.model_name,
                    )
                )
                continue
            reply = generation.content or ""
            grade = scorer.parse(reply)
            out.append(
                JudgeTranscript(
                    scorer.metric,
                    messages,
                    reply,
                    grade.score,
                    grade.raw_grade,
                    grade.explanation,
                    self.model_name,
                )
            )
        return out

    def close(self) -> None:
        """Close the backend."""
        self.backend.close()


def build_judge(
    config: LLMJudgeConfig,
    api_key: str | None,
    *,
    inference: Callable[[NIMConfig], InferenceBackend] | None = None,
    max_retries: int = 5,
    nmp: NMPConfig | None = None,
    env: Mapping[str, str] | None = None,
) -> Judge:
    """A :class:`Judge` from ``llm_judge_config`` and the judge's API key (resolved by the caller from
    ``api_key_env`` / ``LLM_JUDGE_API_KEY`` / ``NVIDIA_API_KEY``), its model built through the backend registry.

    ``backend: openai`` (the default for ``deployment_type: remote``) calls ``config.url`` with the key,
    ``max_concurrency``, ``timeout_s`` and ``max_retries``. ``backend: local`` runs ``model_path`` (or
    ``model_name``) in this process, built by ``inference`` when given (the job runner passes its own backend
    factory, so the judge shares the job's model cache and tests can script it) and by the local backend otherwise.
    ``backend: nemo`` (the default for ``deployment_type: local``, as in the reference) calls ``model_name`` on the
    NeMo platform's NIM proxy (``nmp``: the configuration's ``nmp_config``) with the same endpoint settings and the
    platform's key (``env[api_key_env]``, else ``NMP_API_KEY`` from ``env``, default ``os.environ``) — never
    ``api_key``, which may be a hosted API's key (``NVIDIA_API_KEY``) that the platform must not receive. The
    judge's NIM must be served there already (flywheel does not deploy the judge).
    """
    backend_name = config.backend or ("openai" if config.deployment_type == "remote" else "nemo")
    if backend_name == "openai":
        if not config.url or not config.model_name:
            raise ConfigError(
                "llm_judge_config needs url and model_name for an OpenAI-compatible judge.",
                [("llm_judge_config.url", "required"), ("llm_judge_config.model_name", "required")],
            )
        nim = NIMConfig(model_name=config.model_name, backend="openai", base_url=config.url)
        endpoint = EndpointOptions(
            api_key=api_key,
            max_concurrency=config.max_concurrency,
            timeout_s=config.timeout_s,
            max_retries=max_retries,
        )
        return Judge(build_inference_backend(nim, endpoint=endpoint), model_name=config.model_name)
    if backend_name == "local":
        name = config.model_name or config.model_path
        if not name:
            raise ConfigError(
                "llm_judge_config with backend 'local' needs model_path (a packaged model short name, a local "
                "model directory or GGUF file, or a hub id).",
                [("llm_judge_config.model_path", "required for backend local")],
            )
        nim = NIMConfig(model_name=name, backend="local", model_path=config.model_path)
        backend = inference(nim) if inference is not None else build_inference_backend(nim)
        return Judge(backend, model_name=name)
    if backend_name == "nemo":
        if not config.model_name:
            raise ConfigError(
                "llm_judge_config needs model_name for a judge on the NeMo platform.",
                [("llm_judge_config.model_name", "required for backend nemo")],
            )
        nim = NIMConfig(model_name=config.model_name, backend="nemo", api_key_env=config.api_key_env)
        endpoint = EndpointOptions(
            max_concurrency=config.max_concurrency, timeout_s=config.timeout_s, max_retries=max_retries
        )
        backend = build_inference_backend(nim, endpoint=endpoint, nmp=nmp, env=env)
        return Judge(backend, model_name=config.model_name)
    raise ConfigError(
        f"Unsupported judge backend {backend_name!r}; set llm_judge_config.backend to 'openai' (with url), "
        "'local' (with model_path) or 'nemo'.",
        [("llm_judge_config.backend", f"unsupported judge backend {backend_name!r}")],
    )


def resolve_judge_api_key(config: LLMJudgeConfig | None, env: dict[str, str] | Any) -> str | None:
    """The judge key: ``env[config.api_key_env]`` when that is set, else ``LLM_JUDGE_API_KEY``, else
    ``NVIDIA_API_KEY`` (``env`` is any mapping, e.g. ``os.environ`` or ``Settings.env``)."""
    names = [config.api_key_env] if config is not None and config.api_key_env else []
    for name in [*names, "LLM_JUDGE_API_KEY", "NVIDIA_API_KEY"]:
        value = env.get(name)
        if value:
            return str(value)
    return None
