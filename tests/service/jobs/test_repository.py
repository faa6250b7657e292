"""JobRepository reads that are not exercised through a job run."""

from __future__ import annotations

from factories import chat_record
from scripted_jobs import Harness


def test_logged_models_name_the_request_model_else_the_response_model(harness: Harness) -> None:
    by_request = chat_record("a", "x", workload_id="w", client_id="c", timestamp=1)
    only_response = chat_record("b", "y", workload_id="w", client_id="c", timestamp=2)
    only_response["request"].pop("model")
    only_response["response"]["model"] = "from-response"
    unnamed = chat_record("c", "z", workload_id="w", client_id="c", timestamp=3)
    unnamed["request"]["model"] = ""
    unnamed["response"].pop("model")
    other_workload = chat_record("d", "w", workload_id="other", client_id="c", timestamp=4)
    harness.ingest([by_request, only_response, unnamed, other_workload])
    names = harness.repo.logged_models("w", "c", recent=10)
    assert dict(names) == {"meta/llama-3.3-70b-instruct": 1, "from-response": 1}
    assert dict(harness.repo.logged_models("w", "c", recent=1)) == {}  # the newest record names none
