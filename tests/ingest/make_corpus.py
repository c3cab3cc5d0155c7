"""Regenerates tests/ingest/malformed/ (the committed corpus of bad import files): `python tests/ingest/make_corpus.py`.

CASES maps a file name to (its bytes, the line or parquet row the message must point at (None: the file as a
whole), the fragments the message must contain, extra `--map` options). Parquet cases are written with pyarrow.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

OUT = Path(__file__).parent / "malformed"
HEAD = "params,tokens,loss,seed\n"
GOOD = "1000000,2e7,3.2,0\n2000000,1e7,3.1,0\n4000000,5e6,3.15,0\n"


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


CASES: dict[str, tuple[bytes, int | None, list[str], dict[str, str]]] = {
    # --- the file as a whole ---
    "empty.csv": (b"", None, ["the file is empty", "expected a header line"], {}),
    "header_only.csv": (HEAD.encode(), None, ["no runs", "expected at least one row"], {}),
    "bad_encoding.csv": ((HEAD + GOOD + "8000000,2.5e6,3.3,0 caf\xe9\n").encode("latin-1"), 5,
                         ["not UTF-8", "expected a UTF-8 text file"], {}),
    "ragged.csv": ((HEAD + GOOD + "1,2,3,4,5,6\n").encode(), None, ["not a well-formed CSV", "expected comma-separated"], {}),
    "unknown_format.txt": ((HEAD + GOOD).encode(), None, ["format '.txt' is unknown", "expected a .csv, .parquet or .jsonl"], {}),
    "not_parquet.parquet": (b"params,tokens,loss\n1,2,3\n", None, ["not a readable parquet file", "expected a parquet table"], {}),
    # --- columns and mapping ---
    "missing_loss.csv": (b"params,tokens\n1000000,2e7\n", None, ["found no column for 'loss'", "--map loss=COLUMN"], {}),
    "missing_tokens_and_flops.csv": (b"params,loss\n1000000,3.2\n", None, ["found no column for 'tokens' or 'flops'"], {}),
    "mapped_column_absent.csv": ((HEAD + GOOD).encode(), None, ["has no column 'Model Size'", "expected one of its columns: params"],
                                 {"params": "Model Size"}),
    # --- values ---
    "nan_loss.csv": ((HEAD + GOOD + "8000000,2.5e6,nan,0\n").encode(), 5, ["loss (column 'loss')", "'nan' (not finite)",
                                                                         "expected a final validation loss"], {}),
    "negative_params.csv": ((HEAD + "-5,2e7,3.2,0\n" + GOOD).encode(), 2, ["params (column 'params')", "'-5' (not > 0)"], {}),
    "inf_tokens.csv": ((HEAD + GOOD + "8000000,inf,3.3,0\n").encode(), 5, ["tokens (column 'tokens')", "'inf' (not finite)"], {}),
    "text_in_number.csv": ((HEAD + GOOD + "8M,2.5e6,3.3,0\n").encode(), 5, ["'8M' (not a number)", "active parameters"], {}),
    "huge_params.csv": ((HEAD + GOOD + "1e20,2.5e6,3.3,0\n").encode(), 5, ["'1e20' (out of range)", "in [1, 1e15]"], {}),
    "empty_loss_cell.csv": ((HEAD + GOOD + "8000000,2.5e6,,0\n").encode(), 5, ["found an empty cell", "loss"], {}),
    "negative_seed.csv": ((HEAD + GOOD + "8000000,2.5e6,3.3,-1\n").encode(), 5, ["seed (column 'seed')", "out of range"], {}),
    "float_iterations.csv": (b"params,tokens,loss,iterations\n1000000,2e7,3.2,1.5\n", 2,
                             ["iterations (column 'iterations')", "'1.5' (not an integer)"], {}),
    "top_k_above_experts.csv": (b"params,tokens,loss,top_k,n_experts\n1000000,2e7,3.2,4,2\n", 2,
                                ["top_k (column 'top_k'): found 4", "expected <= n_experts = 2"], {}),
    "bad_arm.csv": (b"params,tokens,loss,arm\n1000000,2e7,3.2,my arm!\n", 2, ["arm (column 'arm')", "not an arm name"], {}),
    "flops_disagree.csv": (b"params,tokens,flops,flops_per_token,loss\n1000000,2e7,3e14,6e6,3.2\n", 2,
                           ["tokens x flops_per_token = 1.2e+14", "agree within 5%"], {}),
    "duplicate_rows.csv": ((HEAD + GOOD + "1000000,2e7,3.2,0\n").encode(), 5, ["a duplicate of line 2", "one row per config and seed"], {}),
    "same_config_and_seed.csv": ((HEAD + GOOD + "1000000,2e7,3.25,0\n").encode(), 5,
                                 ["the same config and seed as line 2", "--map seed=COLUMN"], {}),
    # --- jsonl ---
    "malformed_line.jsonl": (b'{"params": 1e6, "tokens": 2e7, "loss": 3.2}\n{"params": 2e6, "tokens": \n', 2,
                             ["malformed JSON", "one JSON object per line"], {}),
    "not_an_object.jsonl": (b'{"params": 1e6, "tokens": 2e7, "loss": 3.2}\n[1, 2, 3]\n', 2, ["found a JSON list"], {}),
    "bool_for_number.jsonl": (b'{"params": true, "tokens": 2e7, "loss": 3.2}\n', 1, ["params (column 'params')",
                                                                                     "True (a boolean)"], {}),
    "string_number.jsonl": (b'{"params": 1e6, "tokens": "lots", "loss": 3.2}\n', 1, ["'lots' (not a number)"], {}),
    # --- parquet ---
    "negative_loss.parquet": (_parquet(pd.DataFrame({"params": [1e6, 2e6], "tokens": [2e7, 1e7], "loss": [3.2, -1.0]})),
                              2, ["row 2", "loss (column 'loss')", "-1.0 (not > 0)"], {}),
    "nan_params.parquet": (_parquet(pd.DataFrame({"params": [float("nan")], "tokens": [2e7], "loss": [3.2]})), 1,
                           ["row 1", "params (column 'params')", "(not finite)"], {}),
}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for old in OUT.iterdir():
        old.unlink()
    for name, (content, _, _, _) in CASES.items():
        (OUT / name).write_bytes(content)


if __name__ == "__main__":
    main()
