"""ModelConfig: the one description of a CoE/MoE language model.

Pure Python (no torch), so that accounting, the YAML schema and the search space can use it
without importing the model. Every field is an architecture choice except the three execution
switches at the end (`dispatch`, `attention_impl`, `uniform_routing`), which change how the same
math is computed, never what is computed (uniform routing is a benchmark-only switch).

Semantics follow arXiv 2506.18945 (Chain-of-Experts) and its reference code; see
../shared/DESIGN.md. MoE is exactly `iterations == 1`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

RouterMode = Literal["independent", "shared"]
Dispatch = Literal["grouped", "loop"]
AttentionImpl = Literal["sdpa", "explicit"]

DEFAULT_N_HEADS = 4  # when neither n_heads nor head_dim is given
_ROUTER_MODES = ("independent", "shared")
_DISPATCHES = ("grouped", "loop")
_ATTENTION_IMPLS = ("sdpa", "explicit")


@dataclass(frozen=True)
class ModelConfig:
    # --- sizes ---
    vocab_size: int = 258  # byte-level tokenizer: 256 bytes + BOS + EOS
    max_seq_len: int = 256
    d_model: int = 128
    n_layers: int = 2
    # attention heads: give n_heads OR head_dim (heads follow width: n_heads = d_model // head_dim);
    # both may be given when they agree (n_heads * head_dim == d_model); neither: DEFAULT_N_HEADS heads.
    # Read the resolved values from `heads` and `head_size`.
    n_heads: int | None = None
    head_dim: int | None = None
    n_kv_heads: int | None = None  # None: = heads (MHA); fewer: grouped-query attention
    # --- experts ---
    d_expert: int = 64  # hidden width of one SwiGLU expert (routed and shared)
    n_experts: int = 16  # routed experts N
    n_shared: int = 1  # shared experts, ungated, run every iteration
    top_k: int = 2  # experts per token per iteration K
    iterations: int = 1  # chain iterations C (1 = MoE)
    # --- the paper's switches (ablations) ---
    router_mode: RouterMode = "independent"  # one router per iteration, or one shared by all
    inner_residual: bool = True  # u_{t+1} = u_t + f_t(u_t)  (else u_{t+1} = f_t(u_t))
    outer_residual: bool = False  # layer output u_C + h_attn (reference code: off)
    renormalize_topk: bool = False  # renormalise the K gate weights to sum 1 (reference: off)
    routed_scaling: float = 1.0
    aux_loss_alpha: float = 0.001  # DeepSeek-V2 sequence-level balance loss, per router per iteration
    dense: bool = False  # dense FFN mode: no router, all N == K experts always on, weight 1
    # --- misc architecture ---
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = False
    init_std: float = 0.02
    # --- execution switches (same math) ---
    dispatch: Dispatch = "grouped"  # grouped_mm over sorted tokens, or the per-expert loop
    attention_impl: AttentionImpl = "sdpa"  # explicit matmuls are visible to FlopCounterMode
    uniform_routing: bool = False  # benchmark only: balanced round-robin expert assignment

    def __post_init__(self) -> None:
        _check_positive(self, "vocab_size", "max_seq_len", "d_model", "n_layers",
                        "d_expert", "n_experts", "top_k", "iterations")
        if self.n_shared < 0:
            _fail("n_shared", self.n_shared, "an integer >= 0")
        self._check_heads()
        if self.n_kv_heads is not None:
            if self.n_kv_heads < 1 or self.heads % self.n_kv_heads:
                _fail("n_kv_heads", self.n_kv_heads, f"a divisor of the {self.heads} attention heads")
        if self.top_k > self.n_experts:
            _fail("top_k", self.top_k, f"<= n_experts={self.n_experts}")
        if self.dense and self.top_k != self.n_experts:
            _fail("top_k", self.top_k, f"== n_experts={self.n_experts} in dense mode (no routing: N=K)")
        for name, allowed in (("router_mode", _ROUTER_MODES), ("dispatch", _DISPATCHES),
                              ("attention_impl", _ATTENTION_IMPLS)):
            if getattr(self, name) not in allowed:
                _fail(name, getattr(self, name), f"one of {', '.join(allowed)}")
        if not self.routed_scaling > 0:
            _fail("routed_scaling", self.routed_scaling, "a number > 0")
        if not self.aux_loss_alpha >= 0:
            _fail("aux_loss_alpha", self.aux_loss_alpha, "a number >= 0")
        if not (self.init_std > 0 and self.norm_eps > 0 and self.rope_theta > 0):
            _fail("init_std/norm_eps/rope_theta", (self.init_std, self.norm_eps, self.rope_theta),
                  "numbers > 0")

    def _check_heads(self) -> None:
        _check_positive(self, *(name for name in ("n_heads", "head_dim") if getattr(self, name) is not None))
        if self.head_dim is not None:
            if self.d_model % self.head_dim:
                _fail("d_model", self.d_model, f"a multiple of head_dim={self.head_dim} (heads = d_model / head_dim)")
            if self.n_heads is not None and self.n_heads * self.head_dim != self.d_model:
                _fail("n_heads", self.n_heads, f"d_model / head_dim = {self.d_model // self.head_dim} when both "
                      f"n_heads and head_dim={self.head_dim} are given (or give only one of them)")
        elif self.d_model % self.heads:
            _fail("d_model", self.d_model, f"a multiple of n_heads={self.heads}")
        if self.head_size % 2:
            _fail("head_dim" if self.head_dim is not None else "d_model",
                  self.head_dim if self.head_dim is not None else self.d_model,
                  f"an even head size for rotary embeddings (d_model / heads = {self.head_size})")

    # --- derived values (functions, never stored) ---
    @property
    def heads(self) -> int:
        """Attention (query) heads: n_heads, else d_model // head_dim, else DEFAULT_N_HEADS."""
        if self.n_heads is not None:
            return self.n_heads
        if self.head_dim is not None:
            return self.d_model // self.head_dim
        return DEFAULT_N_HEADS

    @property
    def head_size(self) -> int:
        """Width of one attention head: head_dim, else d_model // heads."""
        return self.head_dim if self.head_dim is not None else self.d_model // self.heads

    @property
    def kv_heads(self) -> int:
        return self.heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def n_routers(self) -> int:
        """Router modules built: C independent, 1 shared, 0 in dense mode."""
        if self.dense:
            return 0
        return self.iterations if self.router_mode == "independent" else 1

    @property
    def family(self) -> str:
        """'moe' (C=1), 'coe' (C>1) or 'dense'; used to group trials in analysis."""
        if self.dense:
            return "dense"
        return "moe" if self.iterations == 1 else "coe"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Build from a mapping; unknown keys are an error that names them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"ModelConfig: unknown field(s) {unknown}; accepted: {sorted(known)}")
        return cls(**d)


def model_field_names() -> list[str]:
    return [f.name for f in fields(ModelConfig)]


def _check_positive(cfg: ModelConfig, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            _fail(name, value, "an integer >= 1")


def _fail(name: str, value: object, accepted: str) -> None:
    raise ValueError(f"ModelConfig.{name}={value!r} is invalid: expected {accepted}")
