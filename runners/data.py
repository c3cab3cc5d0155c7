"""Training data for one trial: source -> documents (HF `datasets`) -> tokens -> packed windows, cached.

Sources (`DataConfig.source`):
  - `builtin:arithmetic` (default): generated multi-step arithmetic word problems (runners.arithmetic),
    `DataConfig.num_examples` rows, seeded by `DataConfig.seed`; needs nothing external.
  - `files:PATH_OR_GLOB`: jsonl / json / parquet / txt files (a directory means the supported files in
    it); rows become text through `DataConfig.text_template` (plain-text files have one column, `text`:
    use `text_template="{text}"`). Every file, symlinks followed, must lie inside the directory the
    pattern's literal part names or a root of $COE_SWEEP_DATA_ROOTS (coe_sweep.datafiles).
  - `hf:NAME[:CONFIG][@SPLIT]`: a hub data set (split `train` by default); fails at once when offline.

Validation is a fixed set of held-out *documents*, drawn by `DataConfig.seed` (never the training
seed) until they hold `val_tokens` byte-level tokens, so every trial of a data config (whatever its
training seed or tokenizer) is scored on the same documents. Each split's documents are joined with
EOS after each one and cut into windows of seq_len + 1 tokens (stride seq_len: a window's last
token is the next window's first input, so every token is a target once). The windows are cached
as .npy files under `<cache>/tokens/<key>/` keyed by the data config, the files' identity and
seq_len, and memory-mapped on load, so the 16 trials of a sweep tokenize once (a file lock makes
concurrent trials wait for the first).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import string
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from coe_sweep.datafiles import FILE_BUILDERS, DataError, resolve_files
from coe_sweep.trial import DataConfig, config_hash
from runners.tokenizer import build_tokenizer

log = logging.getLogger(__name__)

SOURCE_FORMS = "builtin:arithmetic, files:PATH_OR_GLOB or hf:NAME[:CONFIG][@SPLIT]"
_FORMAT_VERSION = 1  # bump when tokenization/packing/generation changes, to invalidate caches
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class TokenData:
    """Packed token windows: `train_ids`/`val_ids` are (n_windows, seq_len + 1) int32 arrays."""

    train_ids: np.ndarray
    val_ids: np.ndarray
    vocab_size: int
    cache_path: str | None = None  # where the windows live on disk (memory-mapped)

    @property
    def seq_len(self) -> int:
        return int(self.train_ids.shape[1]) - 1


def cache_root(data_cfg: DataConfig) -> Path:
    """`DataConfig.cache_dir`, else $COE_SWEEP_CACHE, else ~/.cache/coe-sweep."""
    root = data_cfg.cache_dir or os.environ.get("COE_SWEEP_CACHE") or "~/.cache/coe-sweep"
    return Path(root).expanduser()


def load_token_data(data_cfg: DataConfig, seq_len: int) -> TokenData:
    """Train/val windows for `data_cfg` at `seq_len`, from the cache or built (and cached) once."""
    validate_data_config(data_cfg, seq_len)
    root = cache_root(data_cfg)
    key = config_hash({"data": _hashable(data_cfg), "seq_len": seq_len, "version": _FORMAT_VERSION,
                       "files": _source_fingerprint(data_cfg.source)})
    out_dir = root / "tokens" / key
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock

    with FileLock(str(out_dir) + ".lock"):
        if not (out_dir / "meta.json").exists():
            _build_windows(data_cfg, seq_len, out_dir)
        else:
            log.info("using cached token windows %s", out_dir)
    meta = json.loads((out_dir / "meta.json").read_text())
    return TokenData(train_ids=np.load(out_dir / "train.npy", mmap_mode="r"),
                     val_ids=np.load(out_dir / "val.npy", mmap_mode="r"),
                     vocab_size=int(meta["vocab_size"]), cache_path=str(out_dir))


def validate_data_config(data_cfg: DataConfig, seq_len: int) -> None:
    """Raise DataError naming the field when a value cannot work with this sequence length or template
    (DataConfig checked its own fields when it was built)."""
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise DataError(f"TrainConfig.seq_len={seq_len!r} is invalid: expected an integer >= 1")
    template_fields(data_cfg.text_template)


def template_fields(template: str) -> list[str]:
    """Column names a `str.format` template refers to (`{question}` -> question)."""
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        raise DataError(f"DataConfig.text_template={template!r} is invalid: {e}") from None
    bad = [n for n in names if not n.isidentifier()]
    if bad or not names:
        raise DataError(f"DataConfig.text_template={template!r} is invalid: expected named fields such "
                        "as '{question}' (one per column), e.g. 'query : {question} response : {answer}'")
    return names


# ---------------------------------------------------------------- building (cache miss)

def _build_windows(data_cfg: DataConfig, seq_len: int, out_dir: Path) -> None:
    docs = load_documents(data_cfg)
    train_idx, val_idx = split_documents(docs, data_cfg.val_tokens, data_cfg.seed)
    train_docs, val_docs = [docs[i] for i in train_idx], [docs[i] for i in val_idx]
    bpe_path = cache_root(data_cfg) / "tokenizers" / f"{config_hash(_hashable(data_cfg))}.json"
    tokenizer = build_tokenizer(data_cfg.tokenizer, train_docs, bpe_path)
    train_windows = pack_windows(tokenizer.encode_docs(train_docs), seq_len, "training")
    val_windows = pack_windows(tokenizer.encode_docs(val_docs), seq_len, "validation")
    tmp = out_dir.with_name(out_dir.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / "train.npy", train_windows)
    np.save(tmp / "val.npy", val_windows)
    meta = {"vocab_size": tokenizer.vocab_size, "seq_len": seq_len, "data": asdict(data_cfg),
            "docs_train": len(train_docs), "docs_val": len(val_docs),
            "windows_train": len(train_windows), "windows_val": len(val_windows)}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    tmp.rename(out_dir)
    log.info("cached %d train / %d val windows of %d tokens -> %s",
             len(train_windows), len(val_windows), seq_len + 1, out_dir)


def split_documents(docs: list[str], val_tokens: int, seed: int) -> tuple[list[int], list[int]]:
    """(train, val) document indices: val drawn by `seed` until it holds val_tokens + 1 byte tokens."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(docs))
    sizes = np.array([len(docs[i].encode("utf-8")) + 1 for i in order])  # + EOS
    n_val = int(np.searchsorted(np.cumsum(sizes), val_tokens + 1)) + 1
    if n_val >= len(docs):
        raise DataError(f"DataConfig.val_tokens={val_tokens} is invalid: the source has only "
                        f"{int(sizes.sum())} tokens in {len(docs)} documents; expected a value that "
                        "leaves documents to train on")
    val_idx = [int(i) for i in order[:n_val]]
    train_idx = sorted(int(i) for i in order[n_val:])
    return train_idx, val_idx


def pack_windows(stream: np.ndarray, seq_len: int, split: str) -> np.ndarray:
    """Cut a token stream into (n, seq_len + 1) windows at stride seq_len (the tail that fits no window is dropped)."""
    n = (len(stream) - 1) // seq_len
    if n < 1:
        raise DataError(f"TrainConfig.seq_len={seq_len} is invalid for this data: the {split} split has "
                        f"{len(stream)} tokens; expected seq_len <= {max(len(stream) - 1, 0)} "
                        "(or more data / a larger DataConfig.val_tokens)")
    view = np.lib.stride_tricks.sliding_window_view(stream, seq_len + 1)[::seq_len][:n]
    return np.ascontiguousarray(view, dtype=np.int32)


# ---------------------------------------------------------------- sources

def load_documents(data_cfg: DataConfig) -> list[str]:
    """The source's rows rendered through the text template, as a list of document strings."""
    kind, _, arg = data_cfg.source.partition(":")
    with _quiet_datasets():
        if kind == "builtin":
            ds = _builtin_dataset(data_cfg)
        elif kind == "files":
            ds = _files_dataset(arg, data_cfg)
        else:
            ds = _hf_dataset(arg, data_cfg)
        return render_texts(ds, data_cfg.text_template, data_cfg.source)


def render_texts(ds: Any, template: str, source: str) -> list[str]:
    """Apply `template` to every row of a `datasets.Dataset`; a field the rows lack is a DataError."""
    names = template_fields(template)
    missing = [n for n in names if n not in ds.column_names]
    if missing:
        hint = " (plain-text files have one column: use text_template='{text}')" \
            if ds.column_names == ["text"] else ""
        raise DataError(f"DataConfig.text_template={template!r} names column(s) {missing} that "
                        f"{source!r} lacks; columns found: {ds.column_names}{hint}")
    rendered = ds.map(lambda batch: {"_text": [template.format(**{n: batch[n][i] for n in names})
                                               for i in range(len(batch[names[0]]))]},
                      batched=True, remove_columns=ds.column_names)
    texts = [t for t in rendered["_text"] if t]
    if len(texts) < 2:
        raise DataError(f"DataConfig.source={source!r} has {len(texts)} non-empty document(s); expected >= 2")
    return texts


def _builtin_dataset(data_cfg: DataConfig) -> Any:
    import datasets

    from runners.arithmetic import generate_arithmetic

    return datasets.Dataset.from_generator(
        generate_arithmetic, gen_kwargs={"seed": data_cfg.seed, "num_examples": data_cfg.num_examples},
        cache_dir=str(cache_root(data_cfg) / "hf"))


def _files_dataset(pattern: str, data_cfg: DataConfig) -> Any:
    import datasets

    files = resolve_files(pattern)
    builder = FILE_BUILDERS[files[0].suffix]
    return datasets.load_dataset(builder, data_files=[str(p.resolve()) for p in files], split="train",
                                 cache_dir=str(cache_root(data_cfg) / "hf"))


def parse_hf_source(arg: str) -> tuple[str, str | None, str]:
    """'NAME[:CONFIG][@SPLIT]' -> (name, config, split); split defaults to 'train'."""
    rest, _, split = arg.partition("@")
    name, _, config = rest.partition(":")
    if not name or "/" in (config or "") or (arg.count("@") > 1):
        raise DataError(f"DataConfig.source='hf:{arg}' is invalid: expected hf:NAME[:CONFIG][@SPLIT]")
    return name, config or None, split or "train"


def hub_offline_reason(probe_timeout_s: float = 2.0) -> str | None:
    """Why the hub cannot be reached (offline env variable or no network), or None when it can.

    The env variables are checked first (no I/O); the network probe runs in a daemon thread bounded
    by `probe_timeout_s`, because DNS resolution ignores socket timeouts.
    """
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var}={os.environ[var]} is set (offline mode)"
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    failure: list[str] = ["timed out"]

    def probe() -> None:
        try:
            socket.create_connection((host, 443), timeout=probe_timeout_s).close()
            failure.clear()
        except OSError as e:
            failure[0] = str(e) or type(e).__name__

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(probe_timeout_s)
    if thread.is_alive() or failure:
        return f"no network: cannot reach {host}:443 ({failure[0] if failure else 'timed out'})"
    return None


def _hf_dataset(arg: str, data_cfg: DataConfig) -> Any:
    import datasets

    name, config, split = parse_hf_source(arg)
    reason = hub_offline_reason()
    if reason is not None:
        raise DataError(f"DataConfig.source='hf:{arg}' needs the Hugging Face hub, which is unreachable: "
                        f"{reason}. Use 'builtin:arithmetic' or 'files:PATH_OR_GLOB' offline, or unset "
                        "HF_HUB_OFFLINE/HF_DATASETS_OFFLINE where a network exists")
    return datasets.load_dataset(name, config, split=split, cache_dir=str(cache_root(data_cfg) / "hf"))


# ---------------------------------------------------------------- helpers

def _hashable(data_cfg: DataConfig) -> dict[str, Any]:
    d = asdict(data_cfg)
    d.pop("cache_dir")  # where the cache lives does not change its content
    return d


def _source_fingerprint(source: str) -> list[tuple[str, int, int]] | None:
    """Identity of the files behind a `files:` source, so edited files invalidate the cache."""
    if not source.startswith("files:"):
        return None
    return [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns)
            for p in resolve_files(source.removeprefix("files:"))]


@contextmanager
def _quiet_datasets() -> Iterator[None]:
    """No per-split progress bars from `datasets` inside a trial (restored afterwards)."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()
