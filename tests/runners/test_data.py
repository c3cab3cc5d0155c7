"""runners.data: sources (builtin, files, hf offline), template errors, packing, validation split, caching."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from coe_sweep.trial import BYTE_VOCAB_SIZE, DataConfig
from runners.arithmetic import arithmetic_example
from runners.data import (
    DataError,
    hub_offline_reason,
    load_documents,
    load_token_data,
    pack_windows,
    parse_hf_source,
    split_documents,
)
from runners.tokenizer import BYTE_EOS_ID, ByteTokenizer

SMALL = dict(num_examples=1000, val_tokens=2048)


def _decode(ids: np.ndarray) -> str:
    return ByteTokenizer().decode([int(i) for i in ids])


# ---------------------------------------------------------------- builtin:arithmetic

def test_builtin_rows_are_deterministic_and_depend_on_the_seed() -> None:
    assert arithmetic_example(0, 7) == arithmetic_example(0, 7)
    assert arithmetic_example(0, 7) != arithmetic_example(1, 7)
    assert len({arithmetic_example(0, i)["question"] for i in range(200)}) > 190


def test_builtin_answers_are_correct_arithmetic() -> None:
    for i in range(300):
        ex = arithmetic_example(3, i)
        steps = [s for s in ex["answer"].split(". ") if "=" in s]
        assert 2 <= len(steps) <= 4, ex
        for s in steps:
            lhs, rhs = s.rstrip(".").split(" = ")
            a, op, b = lhs.split(" ")
            expected = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b),
                        "/": int(a) // int(b)}[op]
            assert int(rhs) == expected, ex
        final = int(ex["answer"].rsplit("The answer is: ", 1)[1])
        assert final == int(steps[-1].rstrip(".").split(" = ")[1]) and final >= 0


def test_builtin_documents_use_the_metamathqa_format(cache_dir: Path) -> None:
    docs = load_documents(DataConfig(cache_dir=str(cache_dir), **SMALL))
    assert len(docs) == SMALL["num_examples"]
    assert all(d.startswith("query : ") and " response : " in d and "The answer is: " in d for d in docs)
    assert docs == load_documents(DataConfig(cache_dir=str(cache_dir), **SMALL))


def test_builtin_token_windows_are_packed_with_eos(cache_dir: Path) -> None:
    data = load_token_data(DataConfig(cache_dir=str(cache_dir), **SMALL), seq_len=64)
    assert data.vocab_size == BYTE_VOCAB_SIZE == 258
    assert data.train_ids.shape[1] == data.val_ids.shape[1] == 65 and data.seq_len == 64
    assert data.train_ids.dtype == np.int32 and int(data.train_ids.max()) < 258
    # stride seq_len: the last token of a window is the first of the next one
    assert np.array_equal(data.train_ids[:-1, -1], data.train_ids[1:, 0])
    stream = np.concatenate([data.train_ids[0], *[w[1:] for w in data.train_ids[1:50]]])
    eos_at = np.flatnonzero(stream == BYTE_EOS_ID)
    assert len(eos_at) >= 5
    for start, end in zip(eos_at[:-1] + 1, eos_at[1:], strict=True):  # every document between two EOS is one problem
        doc = _decode(stream[start:end])
        assert doc.startswith("query : ") and "The answer is: " in doc
    # validation holds at least val_tokens byte tokens (targets)
    assert data.val_ids.shape[0] * 64 >= SMALL["val_tokens"] - 64


# ---------------------------------------------------------------- validation split

def test_validation_set_is_fixed_by_the_data_seed_only(cache_dir: Path, tmp_path: Path) -> None:
    cfg = DataConfig(cache_dir=str(cache_dir), **SMALL)
    a = load_token_data(cfg, seq_len=32)
    b = load_token_data(DataConfig(cache_dir=str(tmp_path), **SMALL), seq_len=32)  # rebuilt, not cached
    assert a.cache_path != b.cache_path
    assert np.array_equal(a.val_ids, b.val_ids) and np.array_equal(a.train_ids, b.train_ids)
    c = load_token_data(DataConfig(cache_dir=str(cache_dir), **{**SMALL, "seed": 1}), seq_len=32)
    assert not np.array_equal(a.val_ids[: len(c.val_ids)], c.val_ids[: len(a.val_ids)])


def test_split_documents_is_disjoint_and_sized_by_val_tokens() -> None:
    docs = [f"document number {i} " * (1 + i % 5) for i in range(400)]
    train_idx, val_idx = split_documents(docs, val_tokens=1000, seed=5)
    assert set(train_idx).isdisjoint(val_idx) and len(train_idx) + len(val_idx) == 400
    val_bytes = sum(len(docs[i]) + 1 for i in val_idx)
    assert val_bytes >= 1001 and val_bytes - (len(docs[val_idx[-1]]) + 1) < 1001
    assert split_documents(docs, 1000, 5) == (train_idx, val_idx)
    assert split_documents(docs, 1000, 6)[1] != val_idx


def test_val_tokens_larger_than_the_source_is_a_clear_error() -> None:
    with pytest.raises(DataError, match=r"val_tokens=100000 .*only \d+ tokens in 3 documents"):
        split_documents(["a", "b", "c"], val_tokens=100_000, seed=0)


def test_pack_windows_drops_the_tail_and_errors_when_too_short() -> None:
    windows = pack_windows(np.arange(11, dtype=np.int32), seq_len=4, split="training")
    assert windows.tolist() == [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8]]
    with pytest.raises(DataError, match=r"seq_len=8 .*validation split has 5 tokens"):
        pack_windows(np.arange(5, dtype=np.int32), seq_len=8, split="validation")


# ---------------------------------------------------------------- files:

def test_files_source_on_real_gsm8k_parquet(gsm8k_dir: Path, cache_dir: Path) -> None:
    cfg = DataConfig(source=f"files:{gsm8k_dir}/train.parquet", val_tokens=4096, cache_dir=str(cache_dir))
    docs = load_documents(cfg)
    rows = pq.read_table(gsm8k_dir / "train.parquet").to_pylist()
    assert len(docs) == len(rows) == 7473
    assert docs[0] == f"query : {rows[0]['question']} response : {rows[0]['answer']}"
    data = load_token_data(cfg, seq_len=128)
    assert data.vocab_size == 258 and data.train_ids.shape[1] == 129
    assert "####" in _decode(data.train_ids[:40].reshape(-1))  # GSM8K's answer marker survives


def test_files_glob_and_directory_take_every_matching_file(gsm8k_dir: Path, cache_dir: Path) -> None:
    by_glob = load_documents(DataConfig(source=f"files:{gsm8k_dir}/*.parquet", cache_dir=str(cache_dir)))
    by_dir = load_documents(DataConfig(source=f"files:{gsm8k_dir}", cache_dir=str(cache_dir)))
    assert len(by_glob) == len(by_dir) == 7473 + 1319


def test_files_jsonl_and_txt(tmp_path: Path, cache_dir: Path) -> None:
    rows = [{"q": f"what is {i} + {i}?", "a": str(2 * i)} for i in range(50)]
    (tmp_path / "part1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:30]))
    (tmp_path / "part2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[30:]))
    docs = load_documents(DataConfig(source=f"files:{tmp_path}/*.jsonl", text_template="Q: {q} A: {a}",
                                     cache_dir=str(cache_dir)))
    assert docs == [f"Q: {r['q']} A: {r['a']}" for r in rows]

    (tmp_path / "notes.txt").write_text("first line of text\nsecond line\n\nthird\n")
    docs = load_documents(DataConfig(source=f"files:{tmp_path}/notes.txt", text_template="{text}",
                                     cache_dir=str(cache_dir)))
    assert docs == ["first line of text", "second line", "third"]


def test_template_naming_a_missing_column_names_it_and_the_columns_found(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"prompt": "a", "completion": "b"}\n' * 3)
    cfg = DataConfig(source=f"files:{tmp_path}/d.jsonl", cache_dir=str(cache_dir))  # default template
    with pytest.raises(DataError, match=r"\['question', 'answer'\].*columns found: \['prompt', 'completion'\]"):
        load_token_data(cfg, seq_len=8)
    (tmp_path / "t.txt").write_text("x\ny\n")
    with pytest.raises(DataError, match=r"columns found: \['text'\].*use text_template='\{text\}'"):
        load_documents(DataConfig(source=f"files:{tmp_path}/t.txt", cache_dir=str(cache_dir)))


def test_no_matching_file_is_a_clear_error(tmp_path: Path, cache_dir: Path) -> None:
    for pattern in (f"{tmp_path}/nothing*.parquet", f"{tmp_path}/missing.jsonl"):
        with pytest.raises(DataError, match=r"no file matches"):
            load_token_data(DataConfig(source=f"files:{pattern}", cache_dir=str(cache_dir)), seq_len=8)
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(DataError, match=r"unsupported file.*x\.csv"):
        load_token_data(DataConfig(source=f"files:{tmp_path}/x.*", cache_dir=str(cache_dir)), seq_len=8)


@pytest.mark.parametrize("source, field", [("nope", "source"), ("builtin:poetry", "source"),
                                           ("files:", "source")])
def test_bad_source_names_the_field(source: str, field: str, cache_dir: Path) -> None:
    with pytest.raises(ValueError, match=rf"DataConfig\.{field}="):  # refused when built, nothing loaded
        DataConfig(source=source, cache_dir=str(cache_dir))


def test_bad_tokenizer_and_template_name_the_field(cache_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"tokenizer='words'.*'byte' or 'bpe:N'"):
        DataConfig(tokenizer="words", cache_dir=str(cache_dir))
    with pytest.raises(DataError, match=r"text_template='no fields'"):
        load_token_data(DataConfig(text_template="no fields", cache_dir=str(cache_dir)), seq_len=8)


# ---------------------------------------------------------------- hf: offline

def test_hf_source_fails_at_once_when_offline(monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"hf:meta-math/MetaMathQA.*unreachable.*HF_\w+_OFFLINE=1.*offline"):
        load_token_data(DataConfig(source="hf:meta-math/MetaMathQA", cache_dir=str(cache_dir)), seq_len=8)
    assert time.perf_counter() - start < 2.0


def test_hf_source_fails_fast_without_network(monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> None:
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with socket.socket() as s:  # a port nothing listens on: connection refused, like a closed network
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"https://127.0.0.1:{port}")
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"unreachable: no network: cannot reach 127\.0\.0\.1:443"):
        load_token_data(DataConfig(source="hf:gsm8k:main@test", cache_dir=str(cache_dir)), seq_len=8)
    assert time.perf_counter() - start < 2.0


def test_hub_probe_is_bounded_when_dns_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    def hanging_dns(*args: object, **kwargs: object) -> None:
        time.sleep(30)
        raise OSError("DNS gave up")  # the probe thread outlives the test: end it the way DNS would

    monkeypatch.setattr(socket, "create_connection", hanging_dns)
    start = time.perf_counter()
    reason = hub_offline_reason(probe_timeout_s=0.5)
    assert reason is not None and "timed out" in reason
    assert time.perf_counter() - start < 1.5


def test_parse_hf_source() -> None:
    assert parse_hf_source("meta-math/MetaMathQA") == ("meta-math/MetaMathQA", None, "train")
    assert parse_hf_source("gsm8k:main@test") == ("gsm8k", "main", "test")
    assert parse_hf_source("gsm8k@validation") == ("gsm8k", None, "validation")
    with pytest.raises(DataError, match=r"hf:NAME\[:CONFIG\]\[@SPLIT\]"):
        parse_hf_source("@test")


# ---------------------------------------------------------------- caching and BPE

def test_token_windows_are_cached_and_memory_mapped(cache_dir: Path) -> None:
    cfg = DataConfig(cache_dir=str(cache_dir), **{**SMALL, "seed": 11})
    first = load_token_data(cfg, seq_len=48)
    stamp = os.stat(Path(first.cache_path) / "train.npy").st_mtime_ns
    start = time.perf_counter()
    second = load_token_data(cfg, seq_len=48)
    assert time.perf_counter() - start < 0.5
    assert second.cache_path == first.cache_path
    assert os.stat(Path(second.cache_path) / "train.npy").st_mtime_ns == stamp  # not rewritten
    assert isinstance(second.train_ids, np.memmap)
    assert load_token_data(cfg, seq_len=40).cache_path != first.cache_path  # keyed by seq_len


def test_bpe_tokenizer_trains_on_the_train_split_and_is_cached(tmp_path: Path, cache_dir: Path) -> None:
    cfg = DataConfig(tokenizer="bpe:512", cache_dir=str(tmp_path), **SMALL)  # a cache of its own
    data = load_token_data(cfg, seq_len=32)
    assert data.vocab_size == 512 and 0 <= int(data.train_ids.min()) and int(data.train_ids.max()) < 512
    tok_files = list((tmp_path / "tokenizers").glob("*.json"))
    assert len(tok_files) == 1
    vocab = json.loads(tok_files[0].read_text())["model"]["vocab"]
    assert len(vocab) == 512 and vocab["<bos>"] == 0 and vocab["<eos>"] == 1
    byte = load_token_data(DataConfig(cache_dir=str(cache_dir), **SMALL), seq_len=32)
    assert data.train_ids.size < 0.6 * byte.train_ids.size  # BPE compresses the same documents
    stamp = tok_files[0].stat().st_mtime_ns
    load_token_data(cfg, seq_len=24)  # a new seq_len re-packs with the cached tokenizer
    assert tok_files[0].stat().st_mtime_ns == stamp
