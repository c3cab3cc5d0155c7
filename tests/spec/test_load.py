"""Valid specs: the shipped search spaces load, defaults resolve, `--set` overrides apply (and bad
ones are refused), the hash is stable, YAML round-trips, and the schema mirrors the run contract."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from coe_sweep.model.config import ModelConfig, model_field_names
from coe_sweep.search.feasibility import load_feasible_spec
from coe_sweep.spec import SpecError, load_spec
from coe_sweep.spec.schema import DataSection, ModelSection, TrainSection
from coe_sweep.spec.yaml_lines import load_located
from coe_sweep.trial import DataConfig, TrainConfig
from coe_sweep.units import parse_bytes as parse_memory

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "search_spaces").glob("*.yaml"))
SHIPPED_PARAMS = [pytest.param(p, id=p.stem) for p in SHIPPED]

SMALL = """\
name: small
model: {d_model: 32, n_heads: 2, d_expert: 32, n_layers: 1, n_experts: 4}
space:
  iterations: {choice: [1, 2]}
  top_k: {choice: [1, 2]}
  train.lr: {float: [1e-3, 1e-2], log: true}
budget:
  flops: [1e11, "3e11"]
  max_memory: 512MiB
train: {batch_size: 8, seq_len: 64}
"""


@pytest.fixture()
def small(tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    return path


def test_shipped_specs_are_there() -> None:
    assert {p.stem for p in SHIPPED} >= {"iso_flops", "coe_vs_moe", "quick"}


@pytest.mark.parametrize("path", SHIPPED_PARAMS)
def test_shipped_spec_loads(path: Path) -> None:
    spec = load_spec(path)
    assert spec.name == path.stem
    assert spec.tracking.experiment == spec.name


def test_iso_flops_spans_ten_x_with_coe_and_moe() -> None:
    spec = load_spec(REPO / "search_spaces" / "iso_flops.yaml")
    levels = spec.budget.flops or []
    assert len(levels) >= 3 and max(levels) / min(levels) >= 10
    assert set(spec.space) >= {"iterations", "top_k", "n_experts", "n_layers"}
    assert spec.space["iterations"].choice == [1, 2, 3]


def test_defaults_resolved_against_cwd(small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    spec = load_spec(small)
    assert spec.tracking.uri == f"sqlite:///{work / 'mlflow.db'}"
    assert spec.tracking.experiment == "small"
    assert spec.cluster.storage_path == str(work / "sweeps" / "small")
    assert spec.budget.flops == [1e11, 3e11]  # YAML-1.2 float and a quoted number
    assert spec.budget.max_memory == 512 * 2**20
    assert list(work.iterdir()) == []  # loading writes nothing


def test_set_overrides_apply(small: Path) -> None:
    spec = load_spec(small, ["search.trials_per_budget=4", "budget.flops=[1e11, 1e12]",
                             "space.train.lr.float=[1e-4, 1e-3]", "cluster.address=auto",
                             "tracking.uri=http://127.0.0.1:5000"])
    assert spec.search.trials_per_budget == 4
    assert spec.budget.flops == [1e11, 1e12]
    assert spec.space["train.lr"].float == [1e-4, 1e-3]
    assert spec.cluster.address == "auto"
    assert spec.tracking.uri == "http://127.0.0.1:5000"


@pytest.mark.parametrize(("override", "fragments"), [
    ("search.trials_per_budget=abc", ["--set search.trials_per_budget: found 'abc'; expected an integer"]),
    ("search.trails=4", ["--set search.trails: found unknown field 'trails'", "trials_per_budget"]),
    ("budget.flops[1]=-1", ["--set budget.flops[1]: found -1; expected greater than 0"]),
    ("budget.max_memory=lots", ["--set budget.max_memory: found 'lots'", "'2GB'"]),
    ("search.algorithm=bayes", ["--set search.algorithm", "'grid', 'random', 'tpe' or 'nsga2'"]),
    ("nokey", ["--set nokey", "KEY.PATH=VALUE"]),
    ("budget.flops=[1e3]", ["--set budget.flops: budget.flops[0]", "min_steps=1 optimizer step"]),
    ("budget.max_memory=1KB", ["--set budget.max_memory", "smallest estimated training memory"]),
])
def test_bad_overrides_refused(small: Path, override: str, fragments: list[str]) -> None:
    with pytest.raises(SpecError) as info:
        load_feasible_spec(small, [override])
    message = str(info.value)
    assert message.startswith(f"{small}: --set ")
    for fragment in fragments:
        assert fragment in message, message


def test_spec_hash_stable_and_sensitive(small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_spec(small)
    monkeypatch.chdir(tmp_path)
    again = load_spec(small)  # other cwd: other tracking uri / storage path, same sweep
    assert first.spec_hash() == again.spec_hash()
    assert len(first.spec_hash()) == 16
    assert load_spec(small, ["search.seed=1"]).spec_hash() != first.spec_hash()
    assert load_spec(small, ["cluster.max_concurrent=3"]).spec_hash() == first.spec_hash()
    reordered = tmp_path / "reordered.yaml"
    reordered.write_text(SMALL.replace("name: small\n", "") + "name: small\n")  # key order is not identity
    assert load_spec(reordered).spec_hash() == first.spec_hash()


def test_to_yaml_round_trips(small: Path, tmp_path: Path) -> None:
    spec = load_spec(small)
    out = tmp_path / "dumped.yaml"
    out.write_text(spec.to_yaml())
    back = load_spec(out)
    assert back == spec
    assert back.spec_hash() == spec.spec_hash()


def test_files_source_inside_spec_dir_resolves(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "train.jsonl").write_text('{"question": "1+1", "answer": "2"}\n')
    path = tmp_path / "files.yaml"
    path.write_text(SMALL + "data: {source: 'files:data/*.jsonl'}\n")
    spec = load_spec(path)
    assert spec.data.source == f"files:{data_dir / '*.jsonl'}"


def test_files_source_outside_needs_allowed_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 gsm8k_dir: Path) -> None:
    path = tmp_path / "gsm8k.yaml"
    path.write_text(SMALL + f"data: {{source: 'files:{gsm8k_dir}/train.parquet'}}\n")
    with pytest.raises(SpecError, match="COE_SWEEP_DATA_ROOTS"):
        load_spec(path)
    monkeypatch.setenv("COE_SWEEP_DATA_ROOTS", str(gsm8k_dir.parent))
    assert load_spec(path).data.source == f"files:{(gsm8k_dir / 'train.parquet').resolve()}"


def test_bundle_dimension_loads(tmp_path: Path) -> None:
    path = tmp_path / "bundle.yaml"
    path.write_text(SMALL.replace("  iterations: {choice: [1, 2]}\n  top_k: {choice: [1, 2]}\n",
                                  "  variant:\n    choice:\n      - {iterations: 1, top_k: 2}\n"
                                  "      - {iterations: 2, top_k: 1, router_mode: shared}\n"))
    spec = load_spec(path)
    assert spec.space["variant"].is_bundle


def test_max_seq_len_defaults_to_seq_len_and_vocab_from_tokenizer(tmp_path: Path) -> None:
    from coe_sweep.search.candidates import budgets, plan_trial

    path = tmp_path / "bpe.yaml"
    path.write_text(SMALL + "data: {tokenizer: 'bpe:512'}\n")
    spec = load_spec(path)
    plan = plan_trial(spec, budgets(spec)[0], {"iterations": 1, "top_k": 1, "train.lr": 1e-3})
    assert plan.run_spec is not None
    assert plan.run_spec.model.vocab_size == 512
    assert plan.run_spec.model.max_seq_len == 64


def test_schema_mirrors_run_contract() -> None:
    assert list(DataSection.model_fields) == [f.name for f in dataclasses.fields(DataConfig)]
    assert list(TrainSection.model_fields) == [f.name for f in dataclasses.fields(TrainConfig)]
    assert list(ModelSection.model_fields) == model_field_names()
    # defaults agree, so an unset section means the runner's defaults
    assert DataSection().model_dump() == dataclasses.asdict(DataConfig())
    assert TrainSection().model_dump() == dataclasses.asdict(TrainConfig())
    assert ModelSection().model_dump() == ModelConfig().to_dict()


def test_yaml_floats_and_lines() -> None:
    located = load_located("a: 1e13\nb:\n  - 3e-3\n  - 7\nc: {d: .5}\n")
    assert located.data == {"a": 1e13, "b": [3e-3, 7], "c": {"d": 0.5}}
    assert isinstance(located.data["b"][1], int)
    assert located.line_of(("b", 1)) == 4
    assert located.line_of(("c", "d", "missing")) == 5


@pytest.mark.parametrize(("text", "expected"), [
    ("2GB", 2 * 10**9), ("512MiB", 512 * 2**20), ("1.5GiB", int(1.5 * 2**30)), (4096, 4096), ("10kb", 10_000),
])
def test_parse_memory(text: object, expected: int) -> None:
    assert parse_memory(text) == expected


@pytest.mark.parametrize("path", SHIPPED_PARAMS)
def test_shipped_spec_round_trips(path: Path, tmp_path: Path) -> None:
    spec = load_spec(path)
    out = tmp_path / path.name
    out.write_text(spec.to_yaml())
    assert load_spec(out) == spec


def test_missing_file_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    from coe_sweep.cli import main

    missing = tmp_path / "nope.yaml"
    with pytest.raises(SpecError, match="a readable UTF-8 YAML file"):
        load_spec(missing)
    monkeypatch.chdir(tmp_path)
    assert main(["plan", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_simulated_sweeps_default_to_their_own_store(small: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`launch --simulate` without tracking.uri writes beside mlflow.db, into mlflow-sim.db; a named URI is kept."""
    monkeypatch.chdir(tmp_path)
    assert load_spec(small, simulated=True).tracking.uri == f"sqlite:///{tmp_path / 'mlflow-sim.db'}"
    assert load_spec(small).tracking.uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    named = load_spec(small, ["tracking.uri=sqlite:///elsewhere.db"], simulated=True)
    assert named.tracking.uri == "sqlite:///elsewhere.db"
