"""Configuration: blueprint files load unchanged, every problem is reported at once, env vars are honoured."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from flywheel.config import (
    DataSplitConfig,
    FlywheelConfig,
    ICLConfig,
    Settings,
    apply_overrides,
    load_config_file,
)
from flywheel.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO.parent / "shared" / "seeds"


@pytest.mark.parametrize("name", ["config.yaml", "demo.yaml", "examples/gpu-remote-judge.yaml"])
def test_every_shipped_config_is_valid(name: str) -> None:
    assert load_config_file(REPO / "config" / name).nims


def test_shipped_default_config_loads_with_local_candidate() -> None:
    config = load_config_file(REPO / "config" / "config.yaml")
    assert [n.backend for n in config.nims] == ["local"]
    assert config.nims[0].customization_enabled


@pytest.mark.parametrize("name", ["blueprint.yaml", "financial.yaml"])
def test_reference_configs_load_unchanged(name: str) -> None:
    path = REPO / "config" / "examples" / name
    raw = yaml.safe_load(path.read_text())
    config = load_config_file(path)
    # every key the file sets is kept with its value
    dumped = config.model_dump()
    for section, values in raw.items():
        if isinstance(values, dict):
            for key, value in values.items():
                if not isinstance(value, dict):
                    assert dumped[section][key] == value, (section, key)
    assert [n.model_name for n in config.nims] == [n["model_name"] for n in raw["nims"]]
    assert all(n.backend == "nemo" for n in config.nims)


def _seed_yaml_blocks(path: Path) -> list[dict]:
    blocks = re.findall(r"```yaml\n(.*?)```", path.read_text(), flags=re.S)
    return [yaml.safe_load(b) for b in blocks]


@pytest.mark.skipif(not SEEDS.is_dir(), reason="shared/seeds is not beside this checkout")
def test_every_yaml_block_of_the_blueprint_configuration_guide_loads(tmp_path: Path) -> None:
    guide = next(SEEDS.glob("000_*.txt"))
    blocks = _seed_yaml_blocks(guide)
    assert len(blocks) >= 10
    merged: dict = {}
    for block in blocks:
        # each snippet on its own is a valid file (the guide shows sections one at a time)
        path = tmp_path / "snippet.yaml"
        path.write_text(yaml.safe_dump(block))
        load_config_file(path)
        merged.update(block)
    path = tmp_path / "merged.yaml"
    path.write_text(yaml.safe_dump(merged))
    config = load_config_file(path)
    assert config.lora_config.adapter_alpha == 16
    assert config.icl_config.example_selection == "semantic_similarity"


def test_invalid_config_lists_every_bad_key_path_in_one_message(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        """
nims:
  - context_length: 8192
    customization_enabled: true
    customizer_configs: {gpus: 1, max_seq_lenght: 10}
data_split_config:
  eval_size: -1
  val_ratio: 1.5
training_config:
  epochs: "two"
unknown_section: {}
"""
    )
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    message = str(info.value)
    paths = {p for p, _ in info.value.problems}
    assert {
        "nims[0].model_name",
        "nims[0].customizer_configs.max_seq_lenght",
        "data_split_config.eval_size",
        "data_split_config.val_ratio",
        "training_config.epochs",
        "unknown_section",
    } <= paths
    for p in paths:
        assert p in message
    assert "unknown key" in message and "required key is missing" in message


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("nims:\n  - model_name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"line \d+"):
        load_config_file(path)


def test_missing_config_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="FLYWHEEL_CONFIG"):
        load_config_file(tmp_path / "nope.yaml")


def test_max_examples_greater_than_eval_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_examples"):
        FlywheelConfig.model_validate(
            {"icl_config": {"max_examples": 10}, "data_split_config": {"eval_size": 5}}
        )


def test_duplicate_candidates_keep_the_first() -> None:
    config = FlywheelConfig.model_validate(
        {
            "nims": [
                {"model_name": "a", "backend": "local", "tag": "1"},
                {"model_name": "a", "backend": "local"},
            ]
        }
    )
    assert len(config.nims) == 1 and config.nims[0].tag == "1"


def test_overrides_take_omitted_fields_from_the_file_not_model_defaults() -> None:
    base = DataSplitConfig(eval_size=100, limit=1000, min_total_records=50, random_seed=7)
    merged = apply_overrides(base, {"eval_size": 30}, what="data_split_config")
    assert (merged.eval_size, merged.limit, merged.random_seed) == (30, 1000, 7)


def test_invalid_override_names_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(DataSplitConfig(), {"val_ratio": 1.0, "bogus": 1}, what="data_split_config")
    assert {p for p, _ in info.value.problems} == {"data_split_config.val_ratio", "data_split_config.bogus"}


def test_icl_min_above_max_is_rejected() -> None:
    with pytest.raises(ValueError, match="min_examples"):
        ICLConfig(min_examples=4, max_examples=2)


def test_environment_variables_are_honoured(tmp_path: Path) -> None:
    env = {
        "FLYWHEEL_HOME": str(tmp_path / "h"),
        "NVIDIA_API_KEY": "nv-secret",
        "EMB_API_KEY": "emb-secret",
        "HF_TOKEN": "hf-secret",
        "ELASTICSEARCH_URL": "http://es:9200",
        "ES_COLLECTION_NAME": "logs",
        "REDIS_URL": "redis://r:6379/1",
        "FLYWHEEL_API_KEYS": "k1, k2",
        "COMPOSE_PROFILES": "flywheel,mlflow",
    }
    settings = Settings.load(REPO / "config" / "config.yaml", env=env)
    assert settings.home == tmp_path / "h"
    assert settings.database_url == f"sqlite:///{tmp_path / 'h' / 'flywheel.db'}"
    assert settings.llm_judge_api_key is not None
    assert settings.llm_judge_api_key.get_secret_value() == "nv-secret"  # falls back to NVIDIA_API_KEY
    assert settings.emb_api_key is not None and settings.emb_api_key.get_secret_value() == "emb-secret"
    assert (settings.elasticsearch_url, settings.es_collection_name) == ("http://es:9200", "logs")
    assert settings.redis_url == "redis://r:6379/1"
    assert [k.secret.get_secret_value() for k in settings.api_keys] == ["k1", "k2"]
    assert settings.config.mlflow_config.enabled is True


def test_flywheel_config_env_selects_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("nims: [{model_name: x, backend: local}]\n")
    settings = Settings.load(env={"FLYWHEEL_CONFIG": str(path)})
    assert settings.config_path == path and settings.config.nims[0].model_name == "x"


def test_secrets_never_appear_in_repr_or_dumps() -> None:
    env = {
        "NVIDIA_API_KEY": "nv-very-secret",
        "LLM_JUDGE_API_KEY": "judge-very-secret",
        "FLYWHEEL_DATABASE_URL": "postgresql://fly:pg-very-secret@db/flywheel",
    }
    settings = Settings.load(REPO / "config" / "config.yaml", env=env)
    text = repr(settings) + str(settings.config.model_dump()) + settings.redacted_database_url()
    for secret in ("nv-very-secret", "judge-very-secret", "pg-very-secret"):
        assert secret not in text
