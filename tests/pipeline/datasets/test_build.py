"""build_datasets end to end on a SQLite store: counts add up, formats, leakage, reproducibility, PII, overrides."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, create_engine, insert

from factories import chat_record, tool_call
from flywheel.config import FlywheelConfig
from flywheel.errors import ConfigError, DataError
from flywheel.pipeline.curate import CurationCounts
from flywheel.pipeline.datasets import (
    Artifact,
    DatasetManifest,
    SplitCounts,
    WorkloadEvidenceSummary,
    build_datasets,
    read_jsonl,
    resolve_data_settings,
)
from flywheel.pipeline.icl import ICLSummary
from flywheel.store._schema import log_records, metadata

TOOLS = [
    {
        "type": "function",
        "function": {"name": n, "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
    }
    for n in ("get_weather", "get_time", "book_taxi")
]


@pytest.fixture
def engine(home: Path) -> Engine:
    """Why: curation reads the store; each test gets an empty SQLite file with the store schema."""
    eng = create_engine(f"sqlite:///{home / 'store.db'}")
    metadata.create_all(eng)
    return eng


def store(engine: Engine, records: list[Any], workload_id: str = "wl", client_id: str = "client") -> None:
    rows = []
    for i, record in enumerate(records):
        data = record if isinstance(record, str) else json.dumps(record)
        ts = record.get("timestamp", i) if isinstance(record, dict) else i
        rows.append(
            {
                "record_hash": f"h{workload_id}{client_id}{i}",
                "workload_id": workload_id,
                "client_id": client_id,
                "timestamp": float(ts),
                "ingested_at": 0.0,
                "data": data,
            }
        )
    with engine.begin() as conn:
        conn.execute(insert(log_records), rows)


def settings(**split: Any) -> Any:
    config = FlywheelConfig.model_validate(
        {
            "data_split_config": {
                "eval_size": 10,
                "val_ratio": 0.2,
                "min_total_records": 20,
                "random_seed": 7,
                **split,
            }
        }
    )
    return resolve_data_settings(config)


def build(engine: Engine, out: Path, data: Any, **kw: Any) -> Any:
    return build_datasets(
        engine,
        "wl",
        "client",
        out_dir=out,
        split=data.split,
        icl=data.icl,
        evaluation=data.evaluation,
        curation=data.curation,
        **kw,
    )


def classification_logs(n: int = 60) -> list[Any]:
    topics = ["business"] * 6 + ["tech"] * 3 + ["sport"]
    records: list[Any] = [
        chat_record(f"Headline number {i}", f"[[[{topics[i % 10].title()}]]]", timestamp=1000 + i)
        for i in range(n)
    ]
    records += [chat_record("Headline  NUMBER 3", "[[[tech]]]", timestamp=10)]  # an older duplicate
    records += [
        chat_record("weather?", None, tool_calls=[tool_call("get_weather", {})], tools=TOOLS, timestamp=11)
    ]
    records += ["{not json", chat_record("no label here", "plain", timestamp=12)]
    return records


def test_classification_build_counts_add_up_and_files_match(engine: Engine, tmp_path: Path) -> None:
    store(engine, classification_logs())
    result = build(engine, tmp_path / "out", settings())
    m = result.manifest
    assert m["workload_type"] == "classification"
    assert m["total"] == 64
    assert m["rejected"] == {
        "record is not valid JSON": 1,
        "teacher response has tool calls (classification workload)": 1,
        "no [[label]] in teacher response (classification workload)": 1,
    }
    assert m["deduplicated"] == 1
    assert m["selected"] == 60
    assert m["total"] == sum(m["rejected"].values()) + m["deduplicated"] + m["selected"]
    assert (m["eval"]["count"], m["train"]["count"], m["val"]["count"]) == (10, 40, 10)
    assert m["eval"]["classes"] == {"business": 6, "tech": 3, "sport": 1}
    assert sum(m["train"]["classes"].values()) == 40
    for info in m["artifacts"].values():
        path = Path(info["path"])
        assert hashlib.sha256(path.read_bytes()).hexdigest() == info["sha256"]
        assert len(read_jsonl(path)) == info["records"]
    assert m["artifacts"]["icl_eval"]["records"] == 10
    assert json.loads((result.out_dir / "manifest.json").read_text())["selected"] == 60

    train = read_jsonl(result.paths["train"])
    assert all(set(t) == {"messages"} and t["messages"][-1]["role"] == "assistant" for t in train)
    evals = read_jsonl(result.paths["eval"])
    assert all(e["workload_id"] == "wl" and "response" in e for e in evals)
    # The newest copy of the duplicate was kept (the older one carries the timestamp 10).
    assert all(e["timestamp"] != 10 for e in evals)

    # Leakage: no eval user text appears in train or val.
    def user_text(messages: list[dict[str, Any]]) -> str:
        return " ".join(m["content"].lower() for m in messages if m["role"] == "user")

    eval_users = {user_text(e["request"]["messages"]) for e in evals}
    trained = {user_text(t["messages"]) for t in train + read_jsonl(result.paths["val"])}
    assert not eval_users & trained


def test_tool_calling_formats(engine: Engine, tmp_path: Path) -> None:
    records = [
        chat_record(
            f"what about city {i}?",
            None,
            tool_calls=[tool_call(("get_weather", "get_time", "book_taxi")[i % 3], {"city": f"c{i}"})],
            tools=TOOLS,
            timestamp=i,
        )
        for i in range(40)
    ]
    records[0]["request"]["messages"].append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {**tool_call("get_time", {}), "function": {"name": "get_time", "arguments": {"city": "x"}}}
            ],
        }
    )
    records[0]["request"]["messages"].append({"role": "user", "content": "and then?"})
    records.append(chat_record("just chatting", "hello", timestamp=99))
    store(engine, records)
    m = build(engine, tmp_path / "out", settings(eval_size=40 // 4))
    res = m.manifest
    assert res["workload_type"] == "tool_calling"
    assert res["rejected"] == {"no tool call in teacher response (tool-calling workload)": 1}
    assert set(res["train"]["classes"]) == {"get_weather", "get_time", "book_taxi"}
    train = read_jsonl(m.paths["train"])
    answer = train[0]["messages"][-1]
    assert train[0]["tools"] == TOOLS
    assert answer["content"] == "" and isinstance(answer["tool_calls"][0]["function"]["arguments"], dict)
    everything = read_jsonl(m.paths["eval"]) + train + read_jsonl(m.paths["val"])
    history = [
        c["function"]["arguments"]
        for r in everything
        for msg in (r["request"]["messages"] if "request" in r else r["messages"][:-1])
        for c in msg.get("tool_calls") or []
    ]
    assert history and all(isinstance(a, str) for a in history)  # request history arguments are JSON strings


def test_same_seed_same_files_and_override_seed_changes_them(engine: Engine, tmp_path: Path) -> None:
    store(engine, classification_logs())
    a = build(engine, tmp_path / "a", settings())
    b = build(engine, tmp_path / "b", settings())
    c = build(engine, tmp_path / "c", settings(random_seed=8))
    digest = {k: v["sha256"] for k, v in a.manifest["artifacts"].items()}
    assert digest == {k: v["sha256"] for k, v in b.manifest["artifacts"].items()}
    assert digest["eval"] != c.manifest["artifacts"]["eval"]["sha256"]


def test_limit_takes_the_newest_records_and_window_bounds_time(engine: Engine, tmp_path: Path) -> None:
    store(engine, [chat_record(f"q{i}", f"[[[c{i % 2}]]]", timestamp=i) for i in range(100)])
    result = build(engine, tmp_path / "o", settings(limit=30, min_total_records=20))
    m = result.manifest
    assert m["selected"] == 30 and m["total"] == 30
    stamps = [e["timestamp"] for e in read_jsonl(result.paths["eval"])]
    assert min(stamps) >= 70
    windowed = build(engine, tmp_path / "w", settings(limit=None), since=10, until=40)
    assert windowed.manifest["total"] == 30


def test_too_few_records_fail_with_the_reference_messages(engine: Engine, tmp_path: Path) -> None:
    store(engine, [chat_record(f"q{i}", "[[[a]]]") for i in range(10)])
    with pytest.raises(DataError, match=r"Not enough records found for the given workload\. A minimum of 20"):
        build(engine, tmp_path / "o", settings())
    store(engine, [chat_record("same", "[[[a]]]") for _ in range(15)], workload_id="wl", client_id="client2")
    data = settings(min_total_records=5, eval_size=3)
    with pytest.raises(DataError, match=r"Insufficient valid records. Found 1 but need 5. Total records: 15"):
        build_datasets(
            engine,
            "wl",
            "client2",
            out_dir=tmp_path / "x",
            split=data.split,
            icl=data.icl,
            evaluation=data.evaluation,
            curation=data.curation,
        )


def test_pii_mask_counts_and_scrubs_the_files(engine: Engine, tmp_path: Path) -> None:
    store(engine, [chat_record(f"mail me at user{i}@example.com", f"[[[c{i % 2}]]]") for i in range(30)])
    config = FlywheelConfig.model_validate(
        {
            "data_split_config": {"eval_size": 5, "min_total_records": 20, "random_seed": 1},
            "curation": {"pii": "mask"},
        }
    )
    result = build(engine, tmp_path / "o", resolve_data_settings(config))
    assert result.manifest["pii"] == {"mode": "mask", "masked": {"EMAIL": 30}}
    for path in result.paths.values():
        assert b"@example.com" not in path.read_bytes()


def test_overrides_keep_file_values_and_reject_nonsense() -> None:
    config = FlywheelConfig.model_validate(
        {"data_split_config": {"eval_size": 50, "val_ratio": 0.3, "limit": None}}
    )
    data = resolve_data_settings(config, {"data_split_config": {"eval_size": 20}})
    assert (data.split.eval_size, data.split.val_ratio, data.split.limit) == (20, 0.3, None)
    with pytest.raises(ConfigError) as exc:
        resolve_data_settings(
            config,
            {
                "data_split_config": {"val_ratio": 1.0},
                "icl_config": {"max_examples": 2, "nonsense": 1},
                "nims": [],
            },
        )
    text = str(exc.value)
    assert "data_split_config.val_ratio" in text and "icl_config.nonsense" in text and "nims" in text
    with pytest.raises(ConfigError, match="max_examples"):
        resolve_data_settings(
            config, {"data_split_config": {"eval_size": 2}, "icl_config": {"max_examples": 3}}
        )
    with pytest.raises(ConfigError, match="smaller than limit"):
        resolve_data_settings(
            config, {"data_split_config": {"eval_size": 60, "limit": 60, "min_total_records": 10}}
        )


def test_manifest_records_config_and_evidence(engine: Engine, tmp_path: Path) -> None:
    store(engine, classification_logs())
    m = build(engine, tmp_path / "o", settings(), with_icl=False).manifest
    assert m["config"]["data_split_config"]["random_seed"] == 7
    assert m["workload_evidence"]["requested"] == "auto"
    assert m["workload_evidence"]["label_share"] > 0.9
    assert m["split"]["seed"] == 7 and m["split"]["decisions"]
    assert "icl_eval" not in m["artifacts"]
    assert orjson.loads((tmp_path / "o" / "manifest.json").read_bytes())["leakage"] == {
        "train_or_val_records_sharing_eval_user_content": 0
    }


def test_the_written_manifest_has_the_keys_its_type_declares(engine: Engine, tmp_path: Path) -> None:
    store(engine, classification_logs())
    build(engine, tmp_path / "o", settings())
    written = orjson.loads((tmp_path / "o" / "manifest.json").read_bytes())
    assert set(written) == DatasetManifest.__required_keys__
    assert set(written["steps"]) == CurationCounts.__required_keys__
    assert set(written["workload_evidence"]) == WorkloadEvidenceSummary.__required_keys__
    assert set(written["icl"]) <= ICLSummary.__required_keys__ | ICLSummary.__optional_keys__
    assert set(written["eval"]) == SplitCounts.__required_keys__
    for artifact in written["artifacts"].values():
        assert set(artifact) == Artifact.__required_keys__


def test_two_processes_produce_the_same_manifest_and_files(engine: Engine, tmp_path: Path) -> None:
    records = classification_logs(300)
    for i in range(0, 300, 7):  # equal timestamps across the range boundary must not lose or repeat rows
        records[i]["timestamp"] = 5000
    store(engine, records)
    config = FlywheelConfig.model_validate(
        {
            "data_split_config": {"eval_size": 20, "min_total_records": 20, "random_seed": 3, "limit": None},
            "curation": {"pii": "mask"},
        }
    )
    data = resolve_data_settings(config)
    one = build(engine, tmp_path / "one", data, workers=1).manifest
    two = build(engine, tmp_path / "two", data, workers=2).manifest
    assert {k: (v["sha256"], v["records"]) for k, v in one["artifacts"].items()} == {
        k: (v["sha256"], v["records"]) for k, v in two["artifacts"].items()
    }
    assert one["icl"] == two["icl"]
    for key in (
        "total",
        "rejected",
        "deduplicated",
        "selected",
        "workload_evidence",
        "eval",
        "train",
        "val",
        "split",
    ):
        assert one[key] == two[key], key
    assert not list((tmp_path / "two").rglob(".*part*"))


def test_worker_choice_is_safe_by_default(engine: Engine) -> None:
    from flywheel.pipeline.datasets._write import choose_workers

    assert choose_workers(create_engine("sqlite://"), 4) == 1  # an in-memory database cannot be shared
    assert choose_workers(engine, None) == 1  # one process unless asked
    assert choose_workers(engine, 3) == 3
