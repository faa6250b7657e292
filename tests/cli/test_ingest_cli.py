"""`flywheel ingest`: JSON counts, exit codes and clean error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from factories import chat_record
from flywheel.cli.main import cli


@pytest.fixture
def env(home: Path, sqlite_url: str) -> dict[str, str]:
    return {"FLYWHEEL_HOME": str(home), "FLYWHEEL_DATABASE_URL": sqlite_url}


def test_json_counts_add_up_to_non_blank_lines(tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "logs.jsonl"
    lines = [json.dumps(chat_record(f"q{i}", timestamp=i)) for i in range(5)]
    lines += ["", "garbage", json.dumps(chat_record("q0", timestamp=0)), json.dumps({"request": {}})]
    path.write_text("\n".join(lines))
    result = CliRunner().invoke(cli, ["ingest", str(path), "--json"], env=env)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["accepted"], out["duplicates"], out["quarantined"]) == (5, 1, 2)
    assert out["accepted"] + out["duplicates"] + out["quarantined"] == 8
    assert out["quarantine_reasons"] == {"not valid JSON": 1, "missing workload_id": 1}


def test_human_output_and_second_run_is_all_duplicates(tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "logs.jsonl"
    path.write_text(json.dumps(chat_record()))
    runner = CliRunner()
    assert "1 records stored" in runner.invoke(cli, ["ingest", str(path)], env=env).output
    assert "1 duplicates skipped" in runner.invoke(cli, ["ingest", str(path)], env=env).output


def test_missing_file_is_a_clean_error(tmp_path: Path, env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, ["ingest", str(tmp_path / "none.jsonl")], env=env)
    assert result.exit_code == 2
    assert "does not exist" in result.output
    assert "Traceback" not in result.output


def test_invalid_config_is_reported_with_key_paths(tmp_path: Path, env: dict[str, str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("data_split_config: {eval_size: 0, nope: 1}\n")
    result = CliRunner().invoke(cli, ["--config", str(bad), "config", "check"], env=env)
    assert result.exit_code == 2
    assert "data_split_config.eval_size" in result.output and "data_split_config.nope" in result.output


def test_help_works_without_loading_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from flywheel.cli.main import cli; from click.testing import CliRunner; "
        "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0, r.output; "
        "import flywheel; assert 'torch' not in sys.modules, 'torch imported'; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_serve_refuses_a_public_address_without_api_keys(env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0"], env=env)
    assert result.exit_code == 2
    assert "FLYWHEEL_API_KEYS" in result.output and "--insecure" in result.output


def test_a_deeply_nested_line_is_quarantined_and_the_rest_of_the_file_stored(
    tmp_path: Path, env: dict[str, str]
) -> None:
    path = tmp_path / "logs.jsonl"
    deep = json.dumps(chat_record("deep"))[:-1] + ', "extra": ' + "[" * 600 + "]" * 600 + "}"
    lines = [json.dumps(chat_record("q1")), deep, json.dumps(chat_record("q2"))]
    path.write_text("\n".join(lines))
    result = CliRunner().invoke(cli, ["ingest", str(path), "--json"], env=env)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["accepted"], out["quarantined"]) == (2, 1)
    assert out["quarantine_reasons"] == {"nested too deeply": 1}


def test_a_truncated_gzip_prints_the_counts_and_why_reading_stopped(
    tmp_path: Path, env: dict[str, str]
) -> None:
    import gzip

    path = tmp_path / "logs.jsonl.gz"
    data = gzip.compress(
        "".join(json.dumps(chat_record(f"q{i}", timestamp=i)) + "\n" for i in range(300)).encode()
    )
    path.write_bytes(data[: len(data) // 2])
    runner = CliRunner()
    result = runner.invoke(cli, ["ingest", str(path)], env=env)
    assert result.exit_code == 1, result.output
    assert "Aborted" not in result.output and "Traceback" not in result.output
    stored = int(result.stdout.split(" records stored")[0])
    assert 0 < stored < 300
    assert "truncated" in result.stderr and f"Reading stopped after line {stored}" in result.stderr
    as_json = runner.invoke(cli, ["ingest", str(path), "--json"], env=env)
    assert as_json.exit_code == 1
    out = json.loads(as_json.stdout)
    assert (out["accepted"], out["duplicates"]) == (0, stored) and "truncated" in out["error"]


def test_a_utf16_file_is_refused_with_how_to_convert_it(tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "logs.jsonl"
    path.write_text(json.dumps(chat_record()) + "\n", encoding="utf-16")
    result = CliRunner().invoke(cli, ["ingest", str(path)], env=env)
    assert result.exit_code == 2
    assert "UTF-16" in result.output and "iconv -f UTF-16 -t UTF-8" in result.output
    assert "Traceback" not in result.output


def test_a_bom_is_skipped_and_non_utf8_lines_get_a_hint(tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "logs.jsonl"
    latin1 = json.dumps(chat_record("café"), ensure_ascii=False).encode("latin-1")
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(chat_record("first")).encode() + b"\n" + latin1 + b"\n")
    result = CliRunner().invoke(cli, ["ingest", str(path)], env=env)
    assert result.exit_code == 0, result.output
    assert "1 records stored" in result.stdout and "1 quarantined" in result.stdout
    assert "not UTF-8 text" in result.stdout and "iconv" in result.stdout


def test_an_id_override_no_store_can_hold_is_refused_before_reading(
    tmp_path: Path, env: dict[str, str]
) -> None:
    path = tmp_path / "logs.jsonl"
    path.write_text(json.dumps(chat_record()))
    result = CliRunner().invoke(cli, ["ingest", str(path), "--workload-id", "w" * 300], env=env)
    assert result.exit_code == 2
    assert "workload_id" in result.output and "at most 255" in result.output
