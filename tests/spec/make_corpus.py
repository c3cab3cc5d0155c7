"""Regenerates tests/spec/malformed/*.yaml (the committed corpus): `python tests/spec/make_corpus.py`.

Each case: the fragments the error message must contain (`# expect:` header lines) and the spec
text, with `# <- error` on the line the message must point at. Two more header lines:
  `# set: KEY=VALUE`   a `--set` override applied to the (valid) spec; the error names the override;
  `# layout: ...`      files around the spec, made in a scratch directory whose `spec/` holds the spec:
                       `file PATH`, `dir PATH` or `link PATH -> TARGET` (paths relative to the scratch root).
And a corpus of unreadable result records (`records/*.json`, what a relaunch must survive), with
`records/expect.json` mapping each file to a fragment of the one line the relaunch prints about it.
"""
from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).parent / "malformed"
HEAD = "model: {d_model: 32, n_heads: 2, d_expert: 32, n_layers: 1, n_experts: 4}\n"
SPACE = "space:\n  iterations: {choice: [1, 2]}\n  top_k: {choice: [1, 2]}\n"
BUDGET = "budget:\n  flops: [1e11, 3e11]\n"
TRAIN = "train: {batch_size: 8, seq_len: 64}\n"


def spec(name: str = "bad", head: str = HEAD, space: str = SPACE, budget: str = BUDGET, train: str = TRAIN,
         extra: str = "") -> str:
    return f"name: {name}\n{head}{space}{budget}{train}{extra}"


E = "  # <- error"
DEEP = 1000  # levels of nesting that ended in a RecursionError before the bounds (the limit is 64)
OUTSIDE = ["file outside/data.jsonl", "file outside/sub/data.jsonl"]
DATA = "data:\n  text_template: '{{text}}'\n  source: '{}'" + E + "\n"


def sets(*items: str) -> str:
    return "".join(f"# set: {item}\n" for item in items)


def layout(*items: str) -> str:
    return "".join(f"# layout: {item}\n" for item in items)


cases = {
 # --- YAML syntax ---
 "yaml_unclosed_flow": (["<yaml>", "well-formed YAML"], spec(space="space:\n  iterations: {choice: [1, 2}" + E + "\n")),
 "yaml_bad_indent": (["<yaml>", "well-formed YAML"], spec(budget="budget:\n  flops: [1e11]\n   max_steps: 10" + E + "\n")),
 "yaml_tab": (["<yaml>", "well-formed YAML"], spec(train="train:\n\tbatch_size: 8" + E + "\n")),
 "yaml_duplicate_key": (["duplicate key 'budget'"], spec(extra="budget:" + E + "\n  tokens: 100000\n")),
 "yaml_not_mapping": (["<document>", "a mapping with the sections"], "- name: bad" + E + "\n- space: {}\n"),
 "yaml_alias_bomb": (["alias bomb"], "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]" + E + "\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"),
 # --- unknown keys at every level ---
 "unknown_top_level": (["spaces", "unknown field", "one of the fields: name"], spec(extra="spaces: {}" + E + "\n")),
 "unknown_model_field": (["model.d_modle", "one of the fields"], spec(head="model:\n  d_modle: 32" + E + "\n")),
 "unknown_budget_key": (["budget.flopz", "flops, tokens"], spec(budget="budget:\n  flops: [1e11]\n  flopz: 3" + E + "\n")),
 "unknown_search_key": (["search.trails_per_budget", "trials_per_budget"], spec(extra="search:\n  trails_per_budget: 4" + E + "\n")),
 "unknown_asha_key": (["search.asha.grace", "grace_period"], spec(extra="search:\n  asha:\n    grace: 2" + E + "\n")),
 "unknown_dimension_key": (["space.top_k.choices", "choice, int, float"], spec(space="space:\n  top_k: {choices: [1, 2]}" + E + "\n")),
 "unknown_space_field": (["space.topk", "unknown field 'topk'"], spec(space="space:\n  topk: {choice: [1, 2]}" + E + "\n")),
 "unknown_train_field": (["train.learning_rate", "unknown field"], spec(train="train:\n  learning_rate: 0.01" + E + "\n")),
 "unknown_cluster_key": (["cluster.gpus", "gpus_per_trial"], spec(extra="cluster:\n  gpus: 1" + E + "\n")),
 "unknown_tracking_key": (["tracking.url", "uri, experiment"], spec(extra="tracking:\n  url: http://x" + E + "\n")),
 "unknown_space_train_field": (["space.train.lrate", "unknown field"], spec(space="space:\n  train.lrate: {float: [1e-3, 1e-2]}" + E + "\n")),
 # --- wrong types ---
 "type_string_for_int": (["model.d_model", "'32'", "an integer"], spec(head="model:\n  d_model: '32'" + E + "\n")),
 "type_bool_for_int": (["train.batch_size", "True", "an integer"], spec(train="train:\n  batch_size: true" + E + "\n")),
 "type_list_for_section": (["budget", "a mapping"], spec(budget="budget: [1e11]" + E + "\n")),
 "type_name_number": (["name", "a string"], spec(name="12") .replace("name: 12", "name: 12" + E, 1)),
 "type_bad_literal": (["search.algorithm", "'bayes'", "one of 'grid', 'random', 'tpe' or 'nsga2'"], spec(extra="search: {algorithm: bayes}" + E + "\n")),
 "missing_budget": (["budget", "this field is required"], spec(budget="")),
 # --- budgets ---
 "budget_negative_flops": (["budget.flops[1]", "-3", "greater than 0"], spec(budget="budget:\n  flops:\n    - 1e11\n    - -3e11" + E + "\n")),
 "budget_zero_tokens": (["budget.tokens", "greater than or equal to 1"], spec(budget="budget:\n  tokens: 0" + E + "\n")),
 "budget_both_horizons": (["budget", "exactly one of flops"], spec(budget="budget:" + E + "\n  flops: [1e11]\n  tokens: 100000\n")),
 "budget_too_small": (["budget.flops[0]", "min_steps=1 optimizer step", "needs"], spec(budget="budget:\n  flops: [1e6]" + E + "\n")),
 "budget_min_steps_too_high": (["budget.flops[0]", "min_steps=100000"], spec(budget="budget:\n  flops:\n    - 1e11" + E + "\n    - 3e11\n  min_steps: 100000\n")),
 "budget_max_below_min_steps": (["budget.max_steps", "max_steps >= min_steps"], spec(budget="budget:\n  flops: [1e11]\n  min_steps: 50\n  max_steps: 10" + E + "\n")),
 "budget_duplicate_levels": (["budget.flops", "distinct FLOPs levels"], spec(budget="budget:\n  flops: [1e11, 1e11]" + E + "\n")),
 "budget_band_excludes_all": (["budget.flops_per_token", "a band that admits some candidate"], spec(budget="budget:\n  flops: [1e11]\n  flops_per_token: {min: 1e9}" + E + "\n")),
 "budget_max_steps_excludes_all": (["budget.max_steps", "the fewest steps"], spec(budget="budget:\n  flops: [1e11]\n  max_steps: 2" + E + "\n")),
 # --- NaN / inf / huge ---
 "nan_lr": (["train.lr", "nan", "finite number"], spec(train="train:\n  lr: .nan" + E + "\n")),
 "inf_budget": (["budget.flops[0]", "inf"], spec(budget="budget:\n  flops:\n    - .inf" + E + "\n")),
 "nan_flops_string": (["budget.flops[0]", "finite number"], spec(budget="budget:\n  flops:\n    - 'nan'" + E + "\n")),
 "huge_d_model": (["model.d_model", "10000000", "less than or equal to 65536"], spec(head="model:\n  d_model: 10000000" + E + "\n")),
 "huge_batch_in_space": (["space.train.batch_size.choice[1]", "less than or equal to 65536"], spec(space=SPACE + "  train.batch_size:\n    choice:\n      - 8\n      - 100000000" + E + "\n", train="train: {seq_len: 64}\n")),
 "huge_flops": (["budget.flops[0]", "less than or equal to 1000000000000000000000000000"], spec(budget="budget:\n  flops:\n    - 1e40" + E + "\n")),
 # --- space ---
 "space_empty": (["space", "at least 1 item"], spec(space="space: {}" + E + "\n")),
 "space_empty_choice": (["space.top_k.choice", "a non-empty choice list"], spec(space="space:\n  top_k: {choice: []}" + E + "\n")),
 "space_lo_gt_hi": (["space.n_layers.int", "lo <= hi"], spec(space=SPACE + "  n_layers: {int: [4, 1]}" + E + "\n", head="model: {d_model: 32, n_heads: 2, d_expert: 32, n_experts: 4}\n")),
 "space_log_nonpositive": (["space.train.lr.float", "lo > 0 for a log range"], spec(space=SPACE + "  train.lr: {float: [0.0, 1e-2], log: true}" + E + "\n")),
 "space_two_kinds": (["space.top_k", "exactly one of"], spec(space="space:\n  top_k: {choice: [1], int: [1, 2]}" + E + "\n")),
 "space_float_range_for_int": (["space.n_layers", "{choice: [...]} for a field of type"], spec(space=SPACE + "  n_layers: {float: [1.0, 4.0]}" + E + "\n", head="model: {d_model: 32, n_heads: 2, d_expert: 32, n_experts: 4}\n")),
 "space_fixed_and_sampled": (["space.n_experts", "sample it or fix it, not both"], spec(space=SPACE + "  n_experts: {choice: [4, 8]}" + E + "\n")),
 "space_vocab_size": (["space.vocab_size", "data.tokenizer"], spec(space=SPACE + "  vocab_size: {choice: [258, 512]}" + E + "\n")),
 "space_bad_choice_value": (["space.router_mode.choice[1]", "'both'", "'independent' or 'shared'"], spec(space=SPACE + "  router_mode:\n    choice:\n      - independent\n      - both" + E + "\n")),
 "space_grid_float": (["space.train.lr", "grid search cannot enumerate"], spec(space=SPACE + "  train.lr: {float: [1e-3, 1e-2]}" + E + "\n", extra="search: {algorithm: grid}\n")),
 "space_bundle_unknown_field": (["space.variant.choice[1].top_q", "unknown field"], spec(space="space:\n  variant:\n    choice:\n      - {iterations: 1}\n      - {top_q: 2}" + E + "\n")),
 # --- top_k > n_experts everywhere ---
 "topk_gt_experts_fixed": (["model.top_k", "<= n_experts"], spec(head="model:\n  d_model: 32\n  n_heads: 2\n  n_experts: 2\n  top_k: 4" + E + "\n", space="space:\n  iterations: {choice: [1, 2]}\n")),
 "topk_gt_experts_space": (["space.top_k", "<= n_experts", "no valid model"], spec(space="space:\n  iterations: {choice: [1, 2]}\n  top_k: {choice: [8, 16]}" + E + "\n")),
 "topk_gt_experts_both_sampled": (["space.", "<= n_experts"], spec(head="model: {d_model: 32, n_heads: 2}\n", space="space:\n  n_experts: {choice: [2, 4]}\n  top_k: {int: [5, 8]}" + E + "\n")),
 # --- constraints ---
 "constraint_syntax": (["constraints[0]", "unexpected '<='"], spec(extra="constraints:\n  - top_k * <= 4" + E + "\n")),
 "constraint_unknown_name": (["constraints[1]", "unknown: top_q"], spec(extra="constraints:\n  - top_k <= n_experts\n  - top_q <= 4" + E + "\n")),
 "constraint_python_call": (["constraints[0]", "unexpected '('"], spec(extra="constraints:\n  - __import__('os') == 1" + E + "\n")),
 "constraint_excludes_all": (["constraints", "every candidate violates one"], spec(extra="constraints:" + E + "\n  - top_k * iterations > 100\n")),
 "constraint_string_arithmetic": (["constraints[0]", "arithmetic needs numbers"], spec(extra="constraints:\n  - router_mode * 2 <= 4" + E + "\n")),
 "constraint_string_order": (["constraints[0]", "strings can only be compared with == or !="], spec(extra="constraints:\n  - router_mode < 'x'" + E + "\n")),
 # --- data sources ---
 "source_unknown_scheme": (["data.source", "s3://bucket/x", "builtin:arithmetic | files:"], spec(extra="data:\n  source: s3://bucket/x" + E + "\n")),
 "source_unknown_builtin": (["data.source", "builtin:wikitext"], spec(extra="data:\n  source: builtin:wikitext" + E + "\n")),
 "source_path_traversal": (["data.source", "without '..' leaving it", "inside the spec's directory"], spec(extra="data:\n  source: files:../../../../etc/passwd" + E + "\n")),
 "source_absolute_outside": (["data.source", "/etc/passwd", "COE_SWEEP_DATA_ROOTS"], spec(extra="data:\n  source: files:/etc/passwd" + E + "\n")),
 "source_home": (["data.source", "'~' is not expanded"], spec(extra="data:\n  source: files:~/.ssh/id_rsa" + E + "\n")),
 "source_no_match": (["data.source", "matches at least one file"], spec(extra="data:\n  source: files:no_such_dir/*.parquet" + E + "\n")),
 "bad_tokenizer": (["data.tokenizer", "'byte' or 'bpe:N'"], spec(extra="data:\n  tokenizer: bpe:10" + E + "\n")),
 "vocab_conflict": (["model.vocab_size", "258 as data.tokenizer='byte' implies"], spec(head=HEAD + "model_extra: 1\n".replace("model_extra: 1\n", ""), extra="").replace("n_experts: 4}", "n_experts: 4, vocab_size: 1000}" + E)),
 # --- search ---
 "objective_unknown": (["search.objectives[0]", "'accuracy'"], spec(extra="search:\n  objectives:\n    - accuracy" + E + "\n")),
 "objective_multi_with_tpe": (["search.objectives", "more objectives need algorithm nsga2"], spec(extra="search:\n  algorithm: tpe\n  objectives: [val_loss, params_total]" + E + "\n")),
 "asha_multi_objective": (["search.asha.enabled", "ASHA is single-objective"], spec(extra="search:\n  algorithm: nsga2\n  objectives: [val_loss, peak_memory_bytes]\n  asha: {enabled: true}" + E + "\n")),
 "trials_zero": (["search.trials_per_budget", "greater than or equal to 1"], spec(extra="search:\n  trials_per_budget: 0" + E + "\n")),
 "max_failures_negative": (["search.max_failures", "-1"], spec(extra="search:\n  max_failures: -1" + E + "\n")),
 # --- memory ---
 "memory_bad_string": (["budget.max_memory", "'2 gigs'", "'512MiB'"], spec(budget="budget:\n  flops: [1e11]\n  max_memory: 2 gigs" + E + "\n")),
 "memory_negative": (["budget.max_memory", "a positive size"], spec(budget="budget:\n  flops: [1e11]\n  max_memory: -5" + E + "\n")),
 "memory_excludes_all": (["budget.max_memory", "the smallest estimated training memory"], spec(budget="budget:\n  flops: [1e11]\n  max_memory: 1MB" + E + "\n")),
 # --- misc ---
 "name_path_traversal": (["name", "../../etc"], spec(name="../../etc").replace("name: ../../etc", "name: ../../etc" + E, 1)),
 "seq_len_over_max": (["train.seq_len", "model.max_seq_len=32"], spec(head="model: {d_model: 32, n_heads: 2, max_seq_len: 32}\n", train="train:\n  seq_len: 64" + E + "\n")),
 "cluster_bad_address": (["cluster.address", "ray://host:10001"], spec(extra="cluster:\n  address: 'http://head'" + E + "\n")),
 "cluster_zero_cpus": (["cluster.cpus_per_trial", "greater than 0"], spec(extra="cluster:\n  cpus_per_trial: 0" + E + "\n")),
 # --- parse: inputs that ended in a traceback ---
 "yaml_deep_flow_list": (["<yaml>", "nested more than 64 levels", "at most 64 levels"], spec(extra="deep: " + "[" * DEEP + "]" * DEEP + E + "\n")),
 "yaml_deep_flow_map": (["<yaml>", "nested more than 64 levels"], spec(extra="deep: " + "{a: " * DEEP + "1" + "}" * DEEP + E + "\n")),
 "yaml_deep_block_list": (["<yaml>", "nested more than 64 levels"], spec(extra="deep:\n  " + "- " * DEEP + "1" + E + "\n")),
 "yaml_deep_block_map": (["<yaml>", "nested more than 64 levels"], spec(extra="deep:\n" + "".join(" " * (i + 1) + "k:\n" for i in range(62)) + " " * 63 + "k:" + E + "\n" + " " * 64 + "k:\n" + " " * 65 + "k: 1\n")),
 "yaml_deep_space_choice": (["<yaml>", "nested more than 64 levels"], spec(space=SPACE + "  d_model: {choice: " + "[" * 200 + "32" + "]" * 200 + "}" + E + "\n")),
 "yaml_self_alias_list": (["<yaml>", "contains itself", "an alias that refers to a node defined before it"], spec(extra="d: &a [*a]" + E + "\n")),
 "yaml_self_alias_map": (["<yaml>", "contains itself"], spec(extra="d: &a {x: 1, y: *a}" + E + "\n")),
 "yaml_self_merge": (["<yaml>", "contains itself"], spec(extra="d: &a {<<: *a}" + E + "\n")),
 "yaml_self_alias_nested": (["<yaml>", "contains itself"], spec(extra="d: &a\n  x: [1, {y: *a}]" + E + "\n")),
 "yaml_alias_deep_expansion": (["<yaml>", "nested more than 64 levels"], "a: &a " + "[" * 30 + "1" + "]" * 30 + "\nb: &b " + "[" * 30 + "*a" + "]" * 30 + "\nc: " + "[" * 30 + "*b" + "]" * 30 + E + "\n" + spec()),
 "yaml_undefined_alias": (["<yaml>", "undefined alias"], spec(extra="d: *nowhere" + E + "\n")),
 "yaml_python_tag": (["<yaml>", "python/object/apply:os.system"], spec(extra="d: !!python/object/apply:os.system ['true']" + E + "\n")),
 "yaml_unhashable_key": (["<yaml>", "unhashable key"], spec(extra="d:\n  ? [a, b]" + E + "\n  : 1\n")),
 "yaml_two_documents": (["<yaml>", "single document"], spec() + "---" + E + "\nname: other\n"),
 "yaml_binary_name": (["name", "a string"], spec().replace("name: bad", "name: !!binary aGVsbG8=" + E, 1)),
 "yaml_huge_int": (["<yaml>", "5000 characters", "at most 40 characters"], spec(extra="search:\n  trials_per_budget: " + "9" * 5000 + E + "\n")),
 "yaml_huge_int_in_list": (["<yaml>", "5000 characters"], spec(budget="budget:\n  flops:\n    - " + "9" * 5000 + E + "\n")),
 "yaml_huge_negative_int": (["<yaml>", "5001 characters"], spec(extra="search:\n  seed: -" + "1" * 5000 + E + "\n")),
 "yaml_huge_hex_int": (["<yaml>", "at most 40 characters"], spec(extra="search:\n  seed: 0x" + "f" * 5000 + E + "\n")),
 "yaml_huge_sexagesimal": (["<yaml>", "at most 40 characters"], spec(extra="search:\n  seed: " + ":".join(["59"] * 2000) + E + "\n")),
 "yaml_huge_int_underscores": (["<yaml>", "at most 40 characters"], spec(extra="search:\n  seed: " + "1_" * 3000 + "1" + E + "\n")),
 "memory_overflow_units": (["budget.max_memory", "'1e400GB'", "a finite size"], spec(budget="budget:\n  flops: [1e11]\n  max_memory: 1e400GB" + E + "\n")),
 "memory_overflow_bytes": (["budget.max_memory", "'1e309'", "a finite size"], spec(budget="budget:\n  flops: [1e11]\n  max_memory: '1e309'" + E + "\n")),
 "memory_inf_float": (["budget.max_memory", "inf"], spec(budget="budget:\n  flops: [1e11]\n  max_memory: .inf" + E + "\n")),
 "flops_overflow": (["budget.flops[0]", "inf"], spec(budget="budget:\n  flops:\n    - 1e400" + E + "\n")),
 "constraint_deep_parens": (["constraints[0]", "nests 33 levels deep", "at most 32 levels"], spec(extra="constraints:\n  - " + "(" * 240 + "top_k" + ")" * 240 + " <= 4" + E + "\n")),
 "constraint_deep_minus": (["constraints[0]", "at most 32 levels"], spec(extra="constraints:\n  - " + "-" * 480 + "top_k <= 4" + E + "\n")),
 "constraint_deep_mixed": (["constraints[0]", "at most 32 levels"], spec(extra="constraints:\n  - top_k <= " + "-(" * 160 + "4" + ")" * 160 + E + "\n")),
 # --- --set overrides: the same bounds as the file ---
 "set_deep_value": (["--set search.seed", "at most 64 levels of nested"], sets("search.seed=" + "[" * DEEP + "]" * DEEP) + spec()),
 "set_deep_map_value": (["--set search", "at most 64 levels of nested"], sets("search={a: " + "{a: " * DEEP + "1" + "}" * DEEP + "}") + spec()),
 "set_self_alias": (["--set search.seed", "an alias that refers to a node defined before it"], sets("search.seed=&a [*a]") + spec()),
 "set_huge_int": (["--set search.seed", "at most 40 characters"], sets("search.seed=" + "7" * 5000) + spec()),
 "set_deep_key": (["--set", "a key path of 1001 parts", "at most 64 parts"], sets("search" + ".a" * DEEP + "=1") + spec()),
 "set_memory_overflow": (["--set budget.max_memory", "a finite size"], sets("budget.max_memory=1e400GB") + spec()),
 "set_constraint_deep": (["--set constraints", "at most 32 levels"], sets("constraints=['" + "(" * 240 + "top_k" + ")" * 240 + " <= 4']") + spec()),
 "set_bad_yaml": (["--set search.seed", "not a YAML value"], sets("search.seed={unclosed: [1, 2}") + spec()),
 "set_two_documents": (["--set search.seed", "single document"], sets("search.seed=1\n---\n2".replace("\n", "\\n")) + spec()),
 "set_python_tag": (["--set name", "python/name:os.system"], sets("name=!!python/name:os.system") + spec()),
 "set_no_equals": (["--set search.seed", "KEY.PATH=VALUE"], sets("search.seed") + spec()),
 "set_empty_key": (["--set =4", "KEY.PATH=VALUE"], sets("=4") + spec()),
 "set_bad_key_segment": (["--set", "KEY.PATH=VALUE"], sets("search..seed=1") + spec()),
 "set_index_out_of_range": (["--set budget.flops[9]", "an existing mapping key or list index"], sets("budget.flops[9]=1e11") + spec()),
 "set_into_scalar": (["--set name.first", "expected a string"], sets("name.first=x") + spec()),
 "set_unknown_section": (["--set nosuch", "unknown field 'nosuch'"], sets("nosuch.key=1") + spec()),
 "set_nan_lr": (["--set train.lr", "finite number"], sets("train.lr=.nan") + spec()),
 "set_inf_flops": (["--set budget.flops", "inf"], sets("budget.flops=[.inf]") + spec()),
 # --- data sources: every resolved file is checked, symlinks followed ---
 "source_glob_question_symlink": (["data.source", "l?nk/data.jsonl", "symlinks followed", "outside/data.jsonl"], layout(*OUTSIDE, "link spec/link -> ../outside") + spec(extra=DATA.format("files:l?nk/data.jsonl"))),
 "source_glob_star_symlink": (["data.source", "symlinks followed", "outside/data.jsonl"], layout(*OUTSIDE, "link spec/link -> ../outside") + spec(extra=DATA.format("files:*/data.jsonl"))),
 "source_glob_recursive_symlink": (["data.source", "2 matched file(s)", "symlinks followed"], layout(*OUTSIDE, "link spec/link -> ../outside") + spec(extra=DATA.format("files:**/data.jsonl"))),
 "source_glob_class_symlink": (["data.source", "symlinks followed"], layout(*OUTSIDE, "link spec/link -> ../outside") + spec(extra=DATA.format("files:[l]ink/*.jsonl"))),
 "source_glob_symlinked_file": (["data.source", "symlinks followed", "evil.jsonl"], layout(*OUTSIDE, "file spec/ok.jsonl", "link spec/evil.jsonl -> ../outside/data.jsonl") + spec(extra=DATA.format("files:*.jsonl"))),
 "source_dir_with_symlinked_file": (["data.source", "symlinks followed", "evil.jsonl"], layout(*OUTSIDE, "file spec/corpus/ok.jsonl", "link spec/corpus/evil.jsonl -> ../../outside/data.jsonl") + spec(extra=DATA.format("files:corpus"))),
 "source_plain_path_symlink": (["data.source", "inside the spec's directory"], layout(*OUTSIDE, "link spec/link -> ../outside") + spec(extra=DATA.format("files:link/data.jsonl"))),
 "source_glob_dotdot": (["data.source", "inside the spec's directory"], layout(*OUTSIDE, "dir spec/sub") + spec(extra=DATA.format("files:*/../../outside/data.jsonl"))),
 "source_space_choice_symlink": (["space.data.source.choice[1]", "symlinks followed"], layout(*OUTSIDE, "file spec/ok.jsonl", "link spec/link -> ../outside") + spec(space=SPACE + "  data.source:\n    choice:\n      - files:ok.jsonl\n      - files:l?nk/*.jsonl" + E + "\n", extra="data: {text_template: '{text}'}\n")),
 "source_unsupported_ext": (["data.source", "unsupported file", "notes.csv"], layout("file spec/notes.csv") + spec(extra=DATA.format("files:*.csv"))),
 "source_mixed_formats": (["data.source", "files of one format"], layout("file spec/data.jsonl", "file spec/data.txt") + spec(extra=DATA.format("files:data.*"))),
 "source_empty_dir": (["data.source", "matches at least one file"], layout("dir spec/empty") + spec(extra=DATA.format("files:empty"))),
 # --- named arms, baseline, seeds ---
 "arm_name_partial": (["space.arch.choice[1]", "a `name:` on every choice of bundle 'arch' or on none"],
                      spec(space="space:\n  arch:\n    choice:\n      - {name: moe_4k, iterations: 1, top_k: 4}\n"
                                 "      - {iterations: 2, top_k: 2}" + E + "\n")),
 "arm_name_duplicate": (["space.arch.choice[1].name", "'moe_4k'", "a name no other choice has"],
                        spec(space="space:\n  arch:\n    choice:\n      - {name: moe_4k, iterations: 1, top_k: 4}\n"
                                   "      - {name: moe_4k, iterations: 2, top_k: 2}" + E + "\n")),
 "arm_name_bad": (["space.arch.choice[0].name", "'coe 2k'", "letters, digits, _ . -"],
                  spec(space="space:\n  arch:\n    choice:\n      - {name: coe 2k, iterations: 2, top_k: 2}" + E + "\n"
                             "      - {name: moe_4k, iterations: 1, top_k: 4}\n")),
 "arm_baseline_unknown": (["analysis.baseline", "'moe_8k'", "an arm the space produces: moe_4k, coe_2k"],
                          spec(space="space:\n  arch:\n    choice:\n      - {name: moe_4k, iterations: 1, top_k: 4}\n"
                                     "      - {name: coe_2k, iterations: 2, top_k: 2}\n",
                               extra="analysis:\n  baseline: moe_8k" + E + "\n")),
 "arm_baseline_derived_unknown": (["analysis.baseline", "'coe-C3'", "an arm the space produces: moe, coe-C2"],
                                  spec(extra="analysis: {baseline: coe-C3}" + E + "\n")),
 "seed_fixed_in_train": (["train.seed", "search.seeds sets it"],
                         spec(train="train:\n  batch_size: 8\n  seq_len: 64\n  seed: 3" + E + "\n")),
 "seed_sampled": (["space.train.seed", "search.seeds: N for seed repeats"],
                  spec(space=SPACE + "  train.seed: {choice: [0, 1]}" + E + "\n")),
 "seeds_zero": (["search.seeds", "greater than or equal to 1"], spec(extra="search:\n  seeds: 0" + E + "\n")),
}

# Result records a relaunch must survive: each is skipped with one line naming the file (the fragment here).
RECORD = {"identity": {"config_hash": "0123456789abcdef", "seed": 0, "budget_label": "1e11", "arm": "moe",
                       "point": {"iterations": 1}},
          "result": {"status": "ok", "final_val_loss": 1.0, "flops": 1e11}}
IDENTITY = RECORD["identity"]
records = {
 "json_array": ("expected a JSON object, found list", "[1, 2, 3]"),
 "json_string": ("expected a JSON object, found str", '"a record"'),
 "json_null": ("expected a JSON object, found NoneType", "null"),
 "truncated": ("Unterminated string", '{"identity": {"config_hash": "0123'),
 "empty_file": ("Expecting value", ""),
 "not_utf8": ("can't decode", b"\xff\xfe\x00garbage"),
 "missing_result": ("result: expected dict", json.dumps({k: v for k, v in RECORD.items() if k != "result"})),
 "result_is_list": ("result: expected dict", json.dumps(RECORD | {"result": [1, 2]})),
 "identity_is_list": ("identity: expected dict", json.dumps(RECORD | {"identity": ["0123", 0]})),
 "point_is_list": ("identity.point: expected dict", json.dumps(RECORD | {"identity": IDENTITY | {"point": ["iterations", 1]}})),
 "hash_is_number": ("identity.config_hash: expected str", json.dumps(RECORD | {"identity": IDENTITY | {"config_hash": 12}})),
 "unknown_result_field": ("unexpected keyword argument 'colour'", json.dumps(RECORD | {"result": RECORD["result"] | {"colour": 1}})),
 "unknown_status": ("result.status: expected one of", json.dumps(RECORD | {"result": RECORD["result"] | {"status": "great"}})),
 "loss_is_text": ("result: final_val_loss: expected a number", json.dumps(RECORD | {"result": RECORD["result"] | {"final_val_loss": "low"}})),
 "curve_not_pairs": ("result:", json.dumps(RECORD | {"result": RECORD["result"] | {"train_curve": [5, 6]}})),
}


def main() -> None:
    for old in OUT.glob("*.yaml"):
        old.unlink()
    for name, (expects, body) in cases.items():
        header = "".join(f"# expect: {e}\n" for e in expects)
        (OUT / f"{name}.yaml").write_text(f"# malformed spec corpus: {name.replace('_', ' ')}\n{header}{body}")
    out = OUT / "records"
    out.mkdir(exist_ok=True)
    for old in out.glob("*.json"):
        old.unlink()
    for name, (_, content) in records.items():
        path = out / f"{name}.json"
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    (out / "expect.json").write_text(json.dumps({f"{n}.json": e for n, (e, _) in records.items()}, indent=1) + "\n")


if __name__ == "__main__":
    main()
