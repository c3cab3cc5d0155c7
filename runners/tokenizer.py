"""Tokenizers for the runner: byte-level (the default) and a BPE trained locally with `tokenizers`.

Both turn a list of documents into one token stream of int32 ids in which every document is
followed by EOS. Byte level: ids 0..255 are the UTF-8 bytes, 256 = BOS, 257 = EOS (vocab 258,
`coe_sweep.trial.BYTE_VOCAB_SIZE`). BPE `bpe:N`: a byte-level BPE with N ids trained on the
training documents only, with `<bos>`/`<eos>` as ids 0/1, saved as JSON in the data cache so that
every trial of a data config uses the very same merges.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from coe_sweep.trial import BYTE_VOCAB_SIZE, tokenizer_vocab_size

log = logging.getLogger(__name__)

BYTE_BOS_ID, BYTE_EOS_ID = 256, 257
BPE_SPECIALS = ("<bos>", "<eos>")


class Tokenizer:
    """Encodes documents into an EOS-separated int32 stream; `vocab_size` is what the model needs."""

    vocab_size: int
    eos_id: int

    def encode_docs(self, docs: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        raise NotImplementedError


class ByteTokenizer(Tokenizer):
    vocab_size = BYTE_VOCAB_SIZE
    eos_id = BYTE_EOS_ID

    def encode_docs(self, docs: Sequence[str]) -> np.ndarray:
        parts: list[np.ndarray] = []
        eos = np.array([BYTE_EOS_ID], dtype=np.int32)
        for doc in docs:
            parts.append(np.frombuffer(doc.encode("utf-8"), dtype=np.uint8).astype(np.int32))
            parts.append(eos)
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


class BpeTokenizer(Tokenizer):
    def __init__(self, path: Path, vocab_size: int) -> None:
        from tokenizers import Tokenizer as HfTokenizer

        self._tok = HfTokenizer.from_file(str(path))
        self.vocab_size = vocab_size
        eos = self._tok.token_to_id(BPE_SPECIALS[1])
        assert eos is not None, f"{path} has no {BPE_SPECIALS[1]} token"
        self.eos_id = eos

    def encode_docs(self, docs: Sequence[str]) -> np.ndarray:
        parts: list[np.ndarray] = []
        eos = np.array([self.eos_id], dtype=np.int32)
        for enc in self._tok.encode_batch(list(docs), add_special_tokens=False):
            parts.append(np.asarray(enc.ids, dtype=np.int32))
            parts.append(eos)
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode(list(ids))


def train_bpe(docs: Sequence[str], vocab_size: int, path: Path) -> None:
    """Train a byte-level BPE of `vocab_size` ids on `docs` and save it to `path` (atomically)."""
    from tokenizers import Tokenizer as HfTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = HfTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(BPE_SPECIALS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(docs, trainer=trainer, length=len(docs))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{np.random.default_rng().integers(1 << 30)}")
    tok.save(str(tmp))
    tmp.replace(path)
    log.info("trained BPE tokenizer (%d ids requested, %d learned) -> %s",
             vocab_size, tok.get_vocab_size(), path)


def build_tokenizer(name: str, train_docs: Sequence[str], bpe_path: Path) -> Tokenizer:
    """'byte' -> ByteTokenizer; 'bpe:N' -> the BPE cached at `bpe_path`, trained on `train_docs` first if absent."""
    vocab_size = tokenizer_vocab_size(name)  # validates the name
    if name == "byte":
        return ByteTokenizer()
    if not bpe_path.exists():
        train_bpe(train_docs, vocab_size, bpe_path)
    else:
        log.info("using cached BPE tokenizer %s", bpe_path)
    return BpeTokenizer(bpe_path, vocab_size)
