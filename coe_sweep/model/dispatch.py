"""The routed-expert dispatch as two `torch.library` custom ops, so that `torch.compile` can trace the
model (each op is opaque to the compiler: a fake implementation gives its output shapes) and CUDA
graphs can capture it (no host syncs, static shapes).

Legend: S tokens, K experts per token, A = S*K token-slots, E routed experts, D model width,
F expert width. Weights are stored (E, out, in): `w_gate_up_E2FD` (E, 2F, D) holds gate rows [0, F)
and up rows [F, 2F) of each expert; `w_down_EDF` (E, D, F).

`routed_experts(...)` is the entry point: the custom ops under torch.compile, an autograd Function
around the same implementations in eager mode.
`coe_sweep::routed_ffn(x_SD, topk_idx_SK, weights_SK, w_gate_up_E2FD, w_down_EDF)` reads as four verbs:
  1. sort the A slots by expert (one stable sort) and gather the token rows once,
  2. count slots per expert as int32 end offsets (`searchsorted` on the sorted experts: no
     `bincount`, whose CUDA kernel reads the maximum back to the host),
  3. grouped matmuls over the sorted rows: gate|up as one (E, 2F, D) matmul, the weighted SwiGLU
     (the gate weight scales the F-wide hidden row, not the D-wide output), then down,
  4. add each token's K rows back: with K = 1 the sort is a permutation, undone by one index_copy_;
     with K > 1 one index_add_ on CPU, and on CUDA a gather by the inverse permutation `inverse_A`
     and a sum over K (CUDA's index_add_ uses atomics: neither deterministic nor exact in bf16).
It returns y_SD and what the backward needs: the gate|up rows, the sort order (and its inverse where
step 4 uses it; an empty tensor elsewhere) and the offsets. `coe_sweep::routed_ffn_backward` is its
adjoint: it gathers the output gradient by the same order and adds each token's K input-gradient rows
back as step 4 does; silu(gate) and the gathered input rows are recomputed, not saved. Both are
deterministic (no atomics). On CPU and for bf16 on CUDA the matmuls are `F.grouped_mm`; fp32 on CUDA
(which grouped_mm does not take) and strides grouped_mm refuses loop over experts with the offsets read
on the host: correct, but not capturable by CUDA graphs (trials on CUDA run bf16 by default).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def grouped_mm(a: Tensor, b: Tensor, offs_E: Tensor) -> Tensor:
    """F.grouped_mm(a, b, offs=offs_E), or a per-expert loop where grouped_mm has no kernel: fp32 on
    CUDA, and strides that are not multiples of 16 bytes (grouped_mm's layout rule: e.g. an fp32
    d_expert that is not a multiple of 4)."""
    if (a.device.type == "cpu" or a.dtype == torch.bfloat16) and _aligned(a) and _aligned(b):
        return F.grouped_mm(a, b, offs=offs_E)
    ends = offs_E.tolist()  # host sync: the fallback only
    starts = [0, *ends[:-1]]
    if a.dim() == 2 and b.dim() == 3:  # (A, k) x (E, k, n) -> (A, n)
        out = a.new_empty(a.shape[0], b.shape[-1])
        for e, (lo, hi) in enumerate(zip(starts, ends, strict=True)):
            torch.mm(a[lo:hi], b[e], out=out[lo:hi])
        return out
    # (k, A) x (A, n) -> (E, k, n): the weight gradient
    out = a.new_empty(len(ends), a.shape[0], b.shape[-1])
    for e, (lo, hi) in enumerate(zip(starts, ends, strict=True)):
        torch.mm(a[:, lo:hi], b[lo:hi], out=out[e])
    return out


def _aligned(t: Tensor) -> bool:
    return all(stride == 1 or (stride * t.element_size()) % 16 == 0 for stride in t.stride())


def _token_rows(order_A: Tensor, k: int) -> Tensor:
    return order_A // k if k > 1 else order_A


def _needs_inverse(device: torch.device, k: int) -> bool:
    return k > 1 and device.type != "cpu"


def _sum_slots(y_AD: Tensor, order_A: Tensor, inverse_A: Tensor, k: int) -> Tensor:
    """out[s] = sum_k of the rows of token s's K slots (step 4 of the module docstring); deterministic."""
    if k == 1:  # sorted row j holds token order_A[j]
        return y_AD.new_empty(y_AD.shape).index_copy_(0, order_A, y_AD)
    if not _needs_inverse(y_AD.device, k):  # CPU: index_add_ runs serially, so it is deterministic
        return y_AD.new_zeros(order_A.numel() // k, y_AD.shape[-1]).index_add_(0, order_A // k, y_AD)
    return y_AD.index_select(0, inverse_A).view(-1, k, y_AD.shape[-1]).sum(dim=1)


def routed_experts(x_SD: Tensor, topk_idx_SK: Tensor, weights_SK: Tensor, w_gate_up_E2FD: Tensor,
                   w_down_EDF: Tensor) -> Tensor:
    """y_SD = sum_k weights[s,k] * FFN_{idx[s,k]}(x[s]), differentiable in x, weights and both weight tensors.

    Under torch.compile the custom op (opaque to the compiler, with its fake implementation); in eager
    mode a plain autograd Function around the same two implementations, which skips the custom op's
    dispatch layers (measured ~0.2 ms per call on CPU, forward + backward)."""
    if torch.compiler.is_compiling():
        y_SD: Tensor = routed_ffn(x_SD, topk_idx_SK, weights_SK, w_gate_up_E2FD, w_down_EDF)[0]
        return y_SD
    out: Tensor = _RoutedFFN.apply(x_SD, topk_idx_SK, weights_SK, w_gate_up_E2FD, w_down_EDF)  # type: ignore[no-untyped-call]
    return out


@torch.library.custom_op("coe_sweep::routed_ffn", mutates_args=())
def routed_ffn(x_SD: Tensor, topk_idx_SK: Tensor, weights_SK: Tensor, w_gate_up_E2FD: Tensor,
               w_down_EDF: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """y_SD = sum_k weights[s,k] * FFN_{idx[s,k]}(x[s]); also (gate_up_A2F, order_A, inverse_A, offsets_E)."""
    return _routed_ffn_impl(x_SD, topk_idx_SK, weights_SK, w_gate_up_E2FD, w_down_EDF)


def _routed_ffn_impl(x_SD: Tensor, topk_idx_SK: Tensor, weights_SK: Tensor, w_gate_up_E2FD: Tensor,
                     w_down_EDF: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    K = topk_idx_SK.shape[1]
    E, Fw = w_down_EDF.shape[0], w_down_EDF.shape[2]
    expert_A, order_A = torch.sort(topk_idx_SK.reshape(-1), stable=True)
    experts_E = torch.arange(E, device=expert_A.device, dtype=expert_A.dtype)
    offsets_E = torch.searchsorted(expert_A, experts_E, right=True, out_int32=True)
    inverse_A = order_A.new_empty(0)
    if _needs_inverse(order_A.device, K):
        inverse_A = torch.empty_like(order_A).scatter_(0, order_A, torch.arange(order_A.numel(), device=order_A.device))
    x_AD = x_SD.index_select(0, _token_rows(order_A, K))
    gate_up_A2F = grouped_mm(x_AD, w_gate_up_E2FD.transpose(-2, -1), offsets_E)
    weight_A1 = weights_SK.reshape(-1).index_select(0, order_A).unsqueeze(1)
    h_AF = F.silu(gate_up_A2F[:, :Fw]).mul_(gate_up_A2F[:, Fw:]).mul_(weight_A1)
    y_AD = grouped_mm(h_AF, w_down_EDF.transpose(-2, -1), offsets_E)
    return _sum_slots(y_AD, order_A, inverse_A, K), gate_up_A2F, order_A, inverse_A, offsets_E


@routed_ffn.register_fake
def _routed_ffn_fake(x_SD: Tensor, topk_idx_SK: Tensor, weights_SK: Tensor, w_gate_up_E2FD: Tensor,
                     w_down_EDF: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    A, K = topk_idx_SK.numel(), topk_idx_SK.shape[1]
    return (x_SD.new_empty(x_SD.shape), x_SD.new_empty(A, w_gate_up_E2FD.shape[1]),
            topk_idx_SK.new_empty(A), topk_idx_SK.new_empty(A if _needs_inverse(x_SD.device, K) else 0),
            topk_idx_SK.new_empty(w_down_EDF.shape[0], dtype=torch.int32))


@torch.library.custom_op("coe_sweep::routed_ffn_backward", mutates_args=())
def routed_ffn_backward(grad_y_SD: Tensor, x_SD: Tensor, weights_SK: Tensor, w_gate_up_E2FD: Tensor,
                        w_down_EDF: Tensor, gate_up_A2F: Tensor, order_A: Tensor, inverse_A: Tensor,
                        offsets_E: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradients of routed_ffn: (grad_x_SD, grad_weights_SK, grad_w_gate_up_E2FD, grad_w_down_EDF)."""
    return _routed_ffn_backward_impl(grad_y_SD, x_SD, weights_SK, w_gate_up_E2FD, w_down_EDF, gate_up_A2F,
                                     order_A, inverse_A, offsets_E)


def _routed_ffn_backward_impl(grad_y_SD: Tensor, x_SD: Tensor, weights_SK: Tensor, w_gate_up_E2FD: Tensor,
                              w_down_EDF: Tensor, gate_up_A2F: Tensor, order_A: Tensor, inverse_A: Tensor,
                              offsets_E: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    S, K = weights_SK.shape
    Fw = w_down_EDF.shape[2]
    token_A = _token_rows(order_A, K)
    x_AD = x_SD.index_select(0, token_A)  # re-gathered rather than saved: A x D bytes fewer held
    grad_y_AD = grad_y_SD.index_select(0, token_A)
    weight_A1 = weights_SK.reshape(-1).index_select(0, order_A).unsqueeze(1)
    gate_AF, up_AF = gate_up_A2F[:, :Fw], gate_up_A2F[:, Fw:]
    silu_AF = F.silu(gate_AF)
    hidden_AF = silu_AF * up_AF  # before the gate weight
    grad_w_down_EDF = grouped_mm(grad_y_AD.t(), hidden_AF * weight_A1, offsets_E)
    grad_h_AF = grouped_mm(grad_y_AD, w_down_EDF, offsets_E)
    grad_weight_A = (grad_h_AF * hidden_AF).sum(dim=1)
    grad_hidden_AF = grad_h_AF.mul_(weight_A1)
    grad_gate_up_A2F = torch.empty_like(gate_up_A2F)
    torch.mul(grad_hidden_AF, silu_AF, out=grad_gate_up_A2F[:, Fw:])
    torch.ops.aten.silu_backward.grad_input(grad_hidden_AF.mul_(up_AF), gate_AF,
                                            grad_input=grad_gate_up_A2F[:, :Fw])
    grad_w_gate_up_E2FD = grouped_mm(grad_gate_up_A2F.t(), x_AD, offsets_E)
    grad_x_AD = grouped_mm(grad_gate_up_A2F, w_gate_up_E2FD, offsets_E)
    grad_weights_SK = grad_weight_A.new_empty(S * K).index_copy_(0, order_A, grad_weight_A).view(S, K)
    return _sum_slots(grad_x_AD, order_A, inverse_A, K), grad_weights_SK, grad_w_gate_up_E2FD, grad_w_down_EDF


@routed_ffn_backward.register_fake
def _routed_ffn_backward_fake(grad_y_SD: Tensor, x_SD: Tensor, weights_SK: Tensor, w_gate_up_E2FD: Tensor,
                              w_down_EDF: Tensor, gate_up_A2F: Tensor, order_A: Tensor, inverse_A: Tensor,
                              offsets_E: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return (x_SD.new_empty(x_SD.shape), weights_SK.new_empty(weights_SK.shape),
            w_gate_up_E2FD.new_empty(w_gate_up_E2FD.shape), w_down_EDF.new_empty(w_down_EDF.shape))


def _setup_context(ctx: torch.autograd.function.FunctionCtx, inputs: tuple[Tensor, ...],
                   output: tuple[Tensor, ...]) -> None:
    x_SD, _, weights_SK, w_gate_up_E2FD, w_down_EDF = inputs
    _, gate_up_A2F, order_A, inverse_A, offsets_E = output
    ctx.save_for_backward(x_SD, weights_SK, w_gate_up_E2FD, w_down_EDF, gate_up_A2F, order_A, inverse_A, offsets_E)
    ctx.set_materialize_grads(False)  # the extra outputs get no gradient: do not allocate zeros for them


def _backward(ctx: Any, grad_y_SD: Tensor | None,
              *_unused: Tensor | None) -> tuple[Tensor | None, ...]:
    if grad_y_SD is None:
        return None, None, None, None, None
    grad_x, grad_weights, grad_w_gate_up, grad_w_down = routed_ffn_backward(grad_y_SD, *ctx.saved_tensors)
    return grad_x, None, grad_weights, grad_w_gate_up, grad_w_down


routed_ffn.register_autograd(_backward, setup_context=_setup_context)


class _RoutedFFN(torch.autograd.Function):
    """The eager path: the same forward and backward as the custom ops, without their dispatch layers."""

    @staticmethod
    def forward(ctx: Any, x_SD: Tensor, topk_idx_SK: Tensor, weights_SK: Tensor, w_gate_up_E2FD: Tensor,
                w_down_EDF: Tensor) -> Tensor:
        y_SD, gate_up_A2F, order_A, inverse_A, offsets_E = _routed_ffn_impl(
            x_SD, topk_idx_SK, weights_SK, w_gate_up_E2FD, w_down_EDF)
        ctx.save_for_backward(x_SD, weights_SK, w_gate_up_E2FD, w_down_EDF, gate_up_A2F, order_A, inverse_A,
                              offsets_E)
        return y_SD

    @staticmethod
    def backward(ctx: Any, grad_y_SD: Tensor) -> tuple[Tensor | None, ...]:
        grad_x, grad_weights, grad_w_gate_up, grad_w_down = _routed_ffn_backward_impl(grad_y_SD, *ctx.saved_tensors)
        return grad_x, None, grad_weights, grad_w_gate_up, grad_w_down
