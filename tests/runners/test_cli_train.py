"""`coe-sweep train` through `coe_sweep.cli.main`: flags, YAML, plan/result output, JSON, exit codes."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from coe_sweep.cli import main

TINY = ["--d-model", "32", "--n-layers", "1", "--n-heads", "2", "--d-expert", "16", "--n-experts", "4",
        "--top-k", "2", "--iterations", "2", "--batch-size", "4", "--seq-len", "32", "--threads", "1",
        "--device", "cpu", "--num-examples", "2000", "--val-tokens", "2048", "--eval-interval", "2"]


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich tables on one line each, whatever the terminal


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["train", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_flags_json(cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run([*TINY, "--steps", "3", "--cache-dir", str(cache_dir), "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)  # stdout is the JSON alone; plan and progress went to stderr
    assert result["status"] == "ok" and result["steps"] == 3 and result["tokens"] == 3 * 128
    assert result["final_val_loss"] < result["val_curve"][0][1]
    assert "params total / active" in err


def test_train_prints_plan_and_result_tables(cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run([*TINY, "--tokens", "300", "--cache-dir", str(cache_dir), "--no-progress"], capsys)
    assert code == 0
    for text in ("plan: coe C=2 K=2 N=4 D=32 L=1", "forward FLOPs/token: routed_experts",
                 "forward FLOPs/token: shared_experts", "horizon (by tokens)", "3 steps x 128 tokens",
                 "estimated memory (fp32): total", "result: ok", "final val loss", "peak memory (measured)",
                 "routing: max_load"):
        assert text in out, text


def test_yaml_config_with_flag_overrides(cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"""
model: {{d_model: 32, n_layers: 1, n_heads: 2, d_expert: 16, n_experts: 4, top_k: 1, iterations: 1}}
train: {{batch_size: 2, seq_len: 16, threads: 1, device: cpu, eval_interval: 50}}
data: {{num_examples: 2000, val_tokens: 2048, cache_dir: "{cache_dir}"}}
horizon: {{steps: 50}}
""")
    code, out, err = _run(["--config", str(cfg), "--steps", "2", "--top-k", "2", "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["steps"] == 2 and result["tokens"] == 2 * 2 * 16  # --steps replaced the YAML horizon
    assert "moe C=1 K=2 N=4" in err  # --top-k overrode the YAML's 1


@pytest.mark.parametrize("yaml_text, message", [
    ("model: {d_model: 32, widht: 3}\n", r"unknown model field\(s\) \['widht'\]; accepted: \['vocab_size'"),
    ("trainer: {lr: 1}\n", r"unknown section\(s\) \['trainer'\]; accepted: \['model', 'train', 'data', 'horizon'\]"),
    ("train: {lr: 0.1, lr_decay: 2}\n", r"unknown train field\(s\) \['lr_decay'\]"),
    ("horizon: {epochs: 3}\n", r"unknown horizon field\(s\) \['epochs'\]"),
    ("- a\n- b\n", r"expected a mapping"),
    ("model: {d_model: " + "[" * 2000 + "]" * 2000 + "}\n", r"bad\.yaml:1: found a value nested more than 64"),
    ("model: &a {d_model: *a}\n", r"bad\.yaml:1: found an alias used inside the node its anchor names"),
    ("train: {steps: " + "9" * 5000 + "}\n", r"found a number written with 5000 characters"),
    ("model: {d_model: [1, 2}\n", r"bad\.yaml:1: found YAML syntax error"),
])
def test_yaml_unknown_keys_exit_2_naming_them(tmp_path: Path, capsys: pytest.CaptureFixture[str], yaml_text: str,
                                              message: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml_text)
    code, out, err = _run(["--config", str(cfg)], capsys)
    assert code == 2 and out == ""
    assert re.search(message, " ".join(err.split())), err


@pytest.mark.parametrize("argv, message", [
    (["--top-k", "9"], "ModelConfig.top_k=9 is invalid: expected <= n_experts=4"),
    (["--lr", "-1"], "TrainConfig.lr=-1.0 is invalid: expected a number in (0, 10000]"),
    (["--vocab-size", "300"], "ModelConfig.vocab_size=300 is invalid for DataConfig.tokenizer='byte'"),
    (["--steps", "0"], "Horizon.steps=0 is invalid"),
    (["--source", "files:/nonexistent/*.parquet"], "no file matches"),
    (["--config", "/nonexistent.yaml"], "no such file"),
])
def test_bad_input_exits_2_with_the_field(cache_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                          message: str) -> None:
    code, _, err = _run([*TINY, "--cache-dir", str(cache_dir), "--no-progress", *argv], capsys)
    assert code == 2
    assert message in " ".join(err.split()), err


def test_hf_source_offline_exits_2_at_once(cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    start = time.perf_counter()
    code, _, err = _run([*TINY, "--source", "hf:meta-math/MetaMathQA", "--cache-dir", str(cache_dir)], capsys)
    assert code == 2 and "offline" in err
    assert time.perf_counter() - start < 2.0


def test_diverged_trial_exits_1(cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run([*TINY, "--lr", "1000", "--warmup-steps", "0", "--grad-clip", "0", "--steps", "30",
                         "--cache-dir", str(cache_dir), "--json"], capsys)
    result = json.loads(out)
    assert code == 1 and result["status"] == "diverged" and "non-finite loss" in result["reason"]


def test_bpe_tokenizer_sets_the_model_vocab(cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run([*TINY, "--tokenizer", "bpe:300", "--steps", "1", "--cache-dir", str(cache_dir),
                           "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "ok" and result["params_total"] > 0
    assert "lm_head" in err and f"{2 * 32 * 300:,}" in err  # the LM head term uses V = 300
