"""The LLM judge over real HTTP: an OpenAI-protocol server on loopback, built from llm_judge_config."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from backends.openai_compat.loopback_openai import LoopbackOpenAI, Reply, chat_completion
from factories import chat_record, tool_call
from flywheel.backends import Generation
from flywheel.backends.openai_compat import OpenAICompatBackend
from flywheel.backends.scripted import ScriptedInferenceBackend
from flywheel.config import LLMJudgeConfig
from flywheel.errors import BackendError, ConfigError
from flywheel.pipeline.evaluate import Judge, build_judge, evaluate, resolve_judge_api_key


def _records() -> tuple[list[dict[str, Any]], list[Generation]]:
    records = [
        chat_record(
            "Summarise: the meeting moved to Tuesday.", "The meeting is now on Tuesday.", record_id="a"
        ),
        chat_record("Summarise: sales grew 5% in Q3.", "Q3 sales rose 5%.", record_id="b"),
        chat_record("Summarise: the office is closed on Friday.", "Office closed Friday.", record_id="c"),
    ]
    gens = [
        Generation(content="Meeting moved to Tuesday."),
        Generation(content="Sales fell in Q2."),
        Generation(content="Something unrelated."),
    ]
    return records, gens


def test_similarity_judge_over_http_with_a_429_then_success() -> None:
    lock = threading.Lock()
    seen_429: set[str] = set()

    def judge_script(body: dict[str, Any], call: int) -> Reply:
        prompt = body["messages"][1]["content"]
        if "meeting" in prompt:
            with lock:
                first = "meeting" not in seen_429
                seen_429.add("meeting")
            if first:
                return Reply(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "0"})
            return Reply(body=chat_completion("10"))
        if "sales" in prompt:
            return Reply(body=chat_completion("Rating: 3/10"))
        return Reply(body=chat_completion("I cannot rate this."))

    records, gens = _records()
    with LoopbackOpenAI(judge_script) as server:
        config = LLMJudgeConfig(
            deployment_type="remote", url=f"{server.base_url}/v1/chat/completions", model_name="judge-70b"
        )
        judge = build_judge(config, api_key="judge-key")
        try:
            result = evaluate(records, gens, "generic", judge, candidate_model="small", bootstrap_samples=100)
        finally:
            judge.close()

    assert len(server.bodies) == 4  # 3 prompts + 1 retry after the 429
    assert all(h["authorization"] == "Bearer judge-key" for h in server.headers)
    assert all(b["model"] == "judge-70b" for b in server.bodies)
    assert [s.scores["similarity"] for s in result.samples] == [1.0, 0.3, None]
    similarity = result.metrics["similarity"]
    assert similarity.value == pytest.approx(0.65)
    assert (similarity.n, similarity.no_grade) == (2, 1)
    assert result.judge_model == "judge-70b"
    transcript = result.samples[0].judge[0].to_json()
    assert transcript["reply"] == "10"
    assert transcript["messages"][0]["role"] == "system"
    assert "The meeting is now on Tuesday." in transcript["messages"][1]["content"]
    assert "Meeting moved to Tuesday." in transcript["messages"][1]["content"]
    assert result.samples[2].judge[0].reply == "I cannot rate this."


def test_tool_calling_correctness_judge_over_http() -> None:
    def judge_script(body: dict[str, Any], call: int) -> Reply:
        prompt = body["messages"][1]["content"]
        verdict = "1" if "New York City" in prompt else "0"
        return Reply(body=chat_completion(f"RATING: {verdict}\nEXPLANATION: checked"))

    truth = tool_call("search_hotels", {"city": "New York", "nights": 2})
    records = [
        chat_record("hotel in NYC for 2 nights", None, tool_calls=[truth], record_id=f"h{i}")
        for i in range(2)
    ]
    gens = [
        Generation(
            content=None, tool_calls=[tool_call("search_hotels", {"city": "New York City", "nights": 2})]
        ),
        Generation(content=None, tool_calls=[tool_call("search_hotels", {"city": "Boston", "nights": 2})]),
    ]
    with LoopbackOpenAI(judge_script) as server:
        judge = Judge(OpenAICompatBackend(server.base_url, "judge"), model_name="judge")
        result = evaluate(records, gens, "tool_calling", judge, bootstrap_samples=100)
        judge.close()
    assert [s.scores["tool_calling_correctness"] for s in result.samples] == [1.0, 0.0]
    assert result.scores["function_name_and_args_accuracy"] == 0.0
    assert result.scores["tool_calling_correctness"] == 0.5
    assert len(server.bodies) == 2
    assert result.samples[1].judge[0].explanation == "checked"


def test_build_judge_refuses_configs_it_cannot_run() -> None:
    with pytest.raises(BackendError, match="Model 'x' not found"):
        build_judge(LLMJudgeConfig(deployment_type="local", backend="local", model_path="x"), None)
    with pytest.raises(ConfigError, match="NeMo"):
        build_judge(LLMJudgeConfig(deployment_type="local", model_name="meta/llama"), None)


def test_a_local_judge_is_built_by_the_callers_inference_factory() -> None:
    built: list[Any] = []

    def inference(nim: Any) -> Any:
        built.append(nim)
        return ScriptedInferenceBackend(name=nim.model_name)

    judge = build_judge(
        LLMJudgeConfig(deployment_type="local", backend="local", model_path="judge-model"),
        None,
        inference=inference,
    )
    assert [(n.model_name, n.backend, n.model_path) for n in built] == [
        ("judge-model", "local", "judge-model")
    ]
    assert judge.model_name == "judge-model"


def test_judge_api_key_resolution_order() -> None:
    config = LLMJudgeConfig(deployment_type="remote", url="http://x/v1", model_name="m", api_key_env="MY_KEY")
    env = {"MY_KEY": "a", "LLM_JUDGE_API_KEY": "b", "NVIDIA_API_KEY": "c"}
    assert resolve_judge_api_key(config, env) == "a"
    assert resolve_judge_api_key(config, {"LLM_JUDGE_API_KEY": "b", "NVIDIA_API_KEY": "c"}) == "b"
    assert resolve_judge_api_key(None, {"NVIDIA_API_KEY": "c"}) == "c"
    assert resolve_judge_api_key(None, {}) is None
