"""Memory of one training step of a CoE/MoE LM, estimated by category (pure Python, no torch).

Every category is in bytes. The activation count follows Korthikanti et al. 2022 ("Reducing
Activation Recomputation in Large Transformer Models", section 4.1): sum, per layer, the tensors
autograd saves for the backward pass, here term by term for this model's implementation
(coe_sweep/model): RMSNorm, rotary, SDPA or explicit attention,
one router, K dispatched token copies, SwiGLU intermediates and one new iterate per chain
iteration. Weights/gradients/optimizer states follow Rajbhandari et al. 2020 ("ZeRO", section 3.1:
mixed-precision Adam keeps fp32 parameters and two fp32 moments; here the weights stay fp32 and
bf16 only touches activations, as torch.autocast does). `tests/accounting/test_memory.py` holds
`.total` within 25% of the peak measured over a real training step (runners/memory.py).

The peak of a training step (after the first, once the optimizer states exist) is reached either
at the start of the backward pass (all saved activations, the logits and their first gradients;
no parameter gradients yet, as zero_grad(set_to_none=True) freed them) or during the optimizer
step (gradients and the optimizer's temporaries; activations are gone). Hence
    total = weights + optimizer + max(activations + logits, grads + optimizer_temp).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from coe_sweep.accounting.params import params_total
from coe_sweep.model.config import ModelConfig

_DTYPE_BYTES = {"fp32": 4, "bf16": 2}  # bytes of the activations' compute dtype
_OPTIMIZER_STATES = {"adamw": 2, "adam": 2, "sgd": 0}  # fp32 tensors per parameter (ZeRO s3.1)
_DEVICES = ("auto", "cpu", "cuda")
_FP32, _INT64, _BOOL = 4, 8, 1


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated bytes of one training step, by category (not all live at the same moment)."""

    weights: int  # fp32 parameters + buffers (rotary cos/sin tables)
    grads: int  # one fp32 gradient per parameter
    optimizer: int  # optimizer states (AdamW: exp_avg and exp_avg_sq, fp32)
    activations: int  # saved for backward by all layers and all C iterations (+ bf16 weight copies)
    logits: int  # logits, the loss's fp32 log-probs, and their two fp32 gradients in the backward
    optimizer_temp: int  # temporaries of the optimizer step (see memory_estimate)

    @property
    def total(self) -> int:
        """Estimated peak bytes of a training step (see the module docstring)."""
        return (self.weights + self.optimizer
                + max(self.activations + self.logits, self.grads + self.optimizer_temp))

    def as_dict(self) -> dict[str, int]:
        """The categories and `total`, in bytes."""
        return {**asdict(self), "total": self.total}


def memory_estimate(cfg: ModelConfig, batch_size: int, seq_len: int, dtype: str = "fp32",
                    optimizer: str = "adamw", *, device: str = "auto") -> MemoryEstimate:
    """Bytes by category of one training step of `cfg` on (batch_size, seq_len) batches.

    dtype: "fp32" (everything fp32, the CPU runner) or "bf16" (torch.autocast to bf16, the CUDA
    runner: fp32 weights, grads and optimizer states; matmul outputs in bf16; norms, router and
    loss in fp32; autocast's bf16 copies of the nn.Linear weights and the experts' explicit bf16
    weight copies, one per iteration, are counted as activations since the backward keeps them).
    optimizer: "adamw" / "adam" (two fp32 states per parameter) or "sgd" (none).
    device: where the runner's fused AdamW runs (runners/optim.py): on "cuda" the kernel updates in
    place (no temporary); on "cpu" it unscales the clipped gradient of one parameter at a time into a
    temporary of that parameter's size. "auto": cuda for bf16, cpu for fp32 (as the runner does).
    The bf16 figures follow the autocast rules but were only checked on CPU autocast.
    """
    _check_inputs(cfg, batch_size, seq_len, dtype, optimizer, device)
    if device == "auto":
        device = "cuda" if dtype == "bf16" else "cpu"
    tokens = batch_size * seq_len
    n_params = params_total(cfg)
    e = _DTYPE_BYTES[dtype]
    weights = _FP32 * n_params + _buffer_bytes(cfg)
    states = _OPTIMIZER_STATES[optimizer]
    sizes = _param_tensor_sizes(cfg)
    # measured with MemTracker on CPU: one parameter-sized temporary at a time (the largest counts)
    optimizer_temp = _FP32 * max(sizes) if states and device == "cpu" else 0
    # Adam's per-parameter `step` counter is a 0-dim fp32 tensor
    optimizer_bytes = states * _FP32 * n_params + (_FP32 * len(sizes) if states else 0)
    return MemoryEstimate(
        weights=weights,
        grads=_FP32 * n_params,
        optimizer=optimizer_bytes,
        activations=round(tokens * _activation_bytes_per_token(cfg, seq_len, batch_size, e, device)
                          + _weight_copy_bytes(cfg, e)),
        logits=tokens * _logits_bytes_per_token(cfg, e),
        optimizer_temp=optimizer_temp,
    )


def _check_inputs(cfg: ModelConfig, batch_size: int, seq_len: int, dtype: str, optimizer: str,
                  device: str) -> None:
    for name, value in (("batch_size", batch_size), ("seq_len", seq_len)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} is invalid: expected an integer >= 1")
    if seq_len > cfg.max_seq_len:
        raise ValueError(f"seq_len={seq_len!r} is invalid: expected <= model max_seq_len={cfg.max_seq_len}")
    for option, chosen, accepted in (("dtype", dtype, tuple(_DTYPE_BYTES)),
                                     ("optimizer", optimizer, tuple(_OPTIMIZER_STATES)), ("device", device, _DEVICES)):
        if chosen not in accepted:
            raise ValueError(f"{option}={chosen!r} is invalid: expected one of {', '.join(accepted)}")


def _buffer_bytes(cfg: ModelConfig) -> int:
    # each attention layer's Rotary holds cos and signed sin tables of (max_seq_len, head_dim), fp32
    return cfg.n_layers * 2 * cfg.max_seq_len * cfg.head_size * _FP32


def _param_tensor_sizes(cfg: ModelConfig) -> list[int]:
    """Element counts of the parameter tensors in registration order (model.parameters())."""
    d, f, n = cfg.d_model, cfg.d_expert, cfg.n_experts
    q_width, kv_width = cfg.heads * cfg.head_size, cfg.kv_heads * cfg.head_size
    layer = [d, (q_width + 2 * kv_width) * d, d * q_width, d]  # attn_norm, wqkv, wo, ffn_norm
    layer += [n * d] * cfg.n_routers + [n * 2 * f * d, n * f * d]  # routers, w_gate_up, w_down
    layer += [cfg.n_shared * 2 * f * d, cfg.n_shared * f * d] if cfg.n_shared else []  # shared w_gate_up, w_down
    head = [] if cfg.tie_embeddings else [cfg.vocab_size * d]
    return [cfg.vocab_size * d, *layer * cfg.n_layers, d, *head]


def _norm_bytes(d: int, output_saved: bool) -> int:
    # coe_sweep/model/layers.py RMSNorm saves its input x and rstd (1 per token), in fp32 (the
    # residual stream is fp32 in both modes). The fp32 output is saved by its consumer unless
    # autocast casts it to bf16 first (the consumer then saves the cast, counted there).
    return _FP32 * ((2 if output_saved else 1) * d + 1)


def _attention_bytes(cfg: ModelConfig, seq_len: int, batch_size: int, e: int) -> float:
    q_width, kv_width = cfg.heads * cfg.head_size, cfg.kv_heads * cfg.head_size
    # normed input cast to the compute dtype by autocast for the one qkv projection
    casts = e * cfg.d_model if e != _FP32 else 0
    saved: float
    if cfg.attention_impl == "sdpa":
        # SDPA saves its q, k, v views: the fused qkv output (v is a view of it) and the one new
        # tensor the rotary makes of q and k (the rotation itself saves no activation); the CPU
        # flash kernel also saves its output and the logsumexp (fp32, 1 per head)
        saved = e * ((q_width + 2 * kv_width) + (q_width + kv_width) + q_width) + _FP32 * cfg.heads
    else:
        # explicit: matmul saves contiguous copies of its q, k, v views (K and V repeated to H heads
        # under GQA), the softmax probs (H x T per token: the full T x T matrix, Korthikanti 2022
        # "5as/h" term), and the (T, T) bool mask per layer (under autocast the fp32 softmax output
        # is saved, and its bf16 cast by the AV matmul)
        kv_saved = q_width if cfg.kv_heads != cfg.heads else kv_width
        probs = cfg.heads * seq_len * (_FP32 + (e if e != _FP32 else 0))
        saved = e * (q_width + 2 * kv_saved) + probs + _BOOL * seq_len / batch_size
    return casts + saved + e * q_width  # + the (B, T, H*hd) re-layout of the output saved by wo


def _chain_bytes(cfg: ModelConfig, e: int, device: str) -> float:
    d, f, k = cfg.d_model, cfg.d_expert, cfg.top_k
    per_iteration = 0
    if cfg.dense:
        # forward_dense: one SwiGLU of width N*F: gate, silu(gate), up, their product
        per_iteration += e * 4 * cfg.n_experts * f + (e * d if e != _FP32 else 0)
    else:
        # router: fp32 softmax scores (N) and the top-k indices (int64)
        per_iteration += _FP32 * cfg.n_experts + _INT64 * k
        if cfg.renormalize_topk and k > 1:
            per_iteration += _FP32 * (k + 1)  # the top-k values and their sum, saved by the division
        # K dispatched token copies per token (one slot each), what each slot keeps for backward:
        if cfg.dispatch == "loop":
            # input row (D), gate, silu(gate), up, their product (4F), output row (D, for the gate
            # weight's gradient), the weighted row index_add saves (D), the gate weight, and two
            # int64 index vectors (slot and token indices)
            per_iteration += k * (e * (3 * d + 4 * f + 1) + 2 * _INT64)
        else:
            # grouped (coe_sweep/model/dispatch.py saves): the gate|up rows (2F), the gate weight and
            # the sort order (int64) per slot, and on CUDA with K > 1 its inverse; the input is the
            # iterate, saved anyway, except under autocast, where its bf16 cast is a new tensor
            orders = 2 if device == "cuda" and k > 1 else 1
            per_iteration += k * (e * (2 * f + 1) + orders * _INT64) + (e * d if e != _FP32 else 0)
    if cfg.n_shared:
        per_iteration += e * 4 * cfg.n_shared * f + (e * 2 * d if e != _FP32 else 0)
    # each iterate u_1..u_{C-1} is a new fp32 tensor saved by the next iteration's fp32 router (u_C
    # is the layer output, counted as the next norm's input); without a router, under autocast,
    # only its bf16 casts are saved (counted above)
    iterates_saved = e == _FP32 or not cfg.dense
    return cfg.iterations * per_iteration + (_FP32 * d * (cfg.iterations - 1) if iterates_saved else 0)


def _activation_bytes_per_token(cfg: ModelConfig, seq_len: int, batch_size: int, e: int, device: str) -> float:
    d = cfg.d_model
    fp32 = e == _FP32
    # under autocast the attention projections and lm_head save bf16 casts of the normed input
    # (counted with them); u_0 stays fp32 for the fp32 router (dense mode has none)
    per_layer = (_norm_bytes(d, output_saved=fp32) + _attention_bytes(cfg, seq_len, batch_size, e)
                 + _norm_bytes(d, output_saved=fp32 or not cfg.dense) + _chain_bytes(cfg, e, device))
    final_norm = _norm_bytes(d, output_saved=fp32) + (0 if fp32 else e * d)
    ids = 2 * _INT64  # token ids (embedding backward) and targets (loss)
    return int(cfg.n_layers * per_layer + final_norm + ids + 0.5)


def _logits_bytes_per_token(cfg: ModelConfig, e: int) -> int:
    # the (B, T, V) logits the caller holds, the fp32 log-softmax the loss saves, then in the
    # backward the fp32 gradients of the log-probs and of the logits, alive together
    return cfg.vocab_size * (e + 3 * _FP32)


def _weight_copy_bytes(cfg: ModelConfig, e: int) -> int:
    """Weight copies the forward makes and the backward keeps (independent of the token count)."""
    d, f = cfg.d_model, cfg.d_expert
    expert_weights = cfg.n_layers * cfg.iterations * 3 * cfg.n_experts * d * f
    if e == _FP32:
        # dense grouped mode re-lays out w_gate_up (gate rows first) and w_down (N, D, F) -> (D, N*F)
        # with copies, every iteration
        return _FP32 * expert_weights if cfg.dense and cfg.dispatch == "grouped" else 0
    # autocast caches one bf16 copy of every nn.Linear / F.linear weight for the forward (attention,
    # shared experts, lm_head or the tied embedding); the routed experts cast their weights
    # explicitly on every call, once per iteration and layer. Routers run in fp32 (no copy).
    q_width, kv_width = cfg.heads * cfg.head_size, cfg.kv_heads * cfg.head_size
    linear = cfg.n_layers * (2 * d * q_width + 2 * d * kv_width + 3 * d * cfg.n_shared * f) + d * cfg.vocab_size
    return e * (linear + expert_weights)
