"""The N routed SwiGLU experts of one layer and the token dispatch that runs them.

Legend: S tokens (B*T flattened), K experts per token, A = S*K token-slots (assignments),
E = N routed experts, D model width, F expert width.
Weights are stored (E, out, in) -- `w_gate_EFD`, `w_up_EFD` (E, F, D) and `w_down_EDF` (E, D, F) --
and passed transposed to `F.grouped_mm` (the layout its CPU and CUDA kernels accept).

Dispatch ("grouped", the fast path) reads as four verbs:
  1. sort the A token-slots by expert (one stable argsort),
  2. count slots per expert (`bincount`) -> int32 `cumsum` offsets,
  3. grouped matmuls over the sorted rows (gate, up, down),
  4. un-sort and combine the K rows of each token with its gate weights (one batched matmul).
Gathers/un-sorts are permutations with known inverses, so custom autograd functions turn their
backward into gathers as well (no scatter/index_add, no `.item()` syncs, no per-expert Python loop).

"loop" is the reference path: a Python loop over experts with plain `F.linear`, which torch's
FlopCounterMode can see (it counts 0 for grouped_mm). Both compute the same function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import Function


class RoutedExperts(nn.Module):
    def __init__(self, n_experts: int, d_model: int, d_expert: int, dispatch: str = "grouped") -> None:
        super().__init__()
        E, D, Fw = n_experts, d_model, d_expert
        self.dispatch = dispatch
        self.w_gate_EFD = nn.Parameter(torch.empty(E, Fw, D))
        self.w_up_EFD = nn.Parameter(torch.empty(E, Fw, D))
        self.w_down_EDF = nn.Parameter(torch.empty(E, D, Fw))

    @property
    def n_experts(self) -> int:
        return self.w_gate_EFD.shape[0]

    def forward(self, x_SD: torch.Tensor, topk_idx_SK: torch.Tensor, weights_SK: torch.Tensor) -> torch.Tensor:
        """sum_k weights[s,k] * FFN_{idx[s,k]}(x[s]) for every token s; returns (S, D)."""
        dtype = _compute_dtype(x_SD)
        x_SD = x_SD.to(dtype)
        if self.dispatch == "loop":
            return self._loop(x_SD, topk_idx_SK, weights_SK.to(dtype))
        return self._grouped(x_SD, topk_idx_SK, weights_SK.to(dtype))

    def forward_dense(self, x_SD: torch.Tensor) -> torch.Tensor:
        """Dense mode: every expert on every token with weight 1 (= one SwiGLU of width E*F)."""
        dtype = _compute_dtype(x_SD)
        x_SD = x_SD.to(dtype)
        E, D, Fw = self.w_down_EDF.shape
        if self.dispatch == "loop":
            y_SD = torch.zeros_like(x_SD)
            for e in range(E):
                y_SD = y_SD + self._expert(x_SD, e)
            return y_SD
        w_gate = self.w_gate_EFD.to(dtype).reshape(E * Fw, D)
        w_up = self.w_up_EFD.to(dtype).reshape(E * Fw, D)
        w_down = self.w_down_EDF.to(dtype).permute(1, 0, 2).reshape(D, E * Fw)
        return F.linear(F.silu(F.linear(x_SD, w_gate)) * F.linear(x_SD, w_up), w_down)

    # --- grouped dispatch -------------------------------------------------------------------
    def _grouped(self, x_SD: torch.Tensor, topk_idx_SK: torch.Tensor, weights_SK: torch.Tensor) -> torch.Tensor:
        S, K = topk_idx_SK.shape
        E = self.n_experts
        dtype = x_SD.dtype
        with torch.no_grad():
            expert_A = topk_idx_SK.reshape(-1)
            order_A = torch.argsort(expert_A, stable=True)  # sorted row j holds slot order_A[j]
            inverse_A = torch.empty_like(order_A)
            inverse_A[order_A] = torch.arange(order_A.numel(), device=order_A.device)
            offsets_E = torch.cumsum(torch.bincount(expert_A, minlength=E), 0).to(torch.int32)
            token_A = order_A // K
        x_AD = _GatherRows.apply(x_SD, token_A, inverse_A, K)  # (A, D) sorted by expert
        gate_AF = F.grouped_mm(x_AD, self.w_gate_EFD.to(dtype).transpose(-2, -1), offs=offsets_E)
        up_AF = F.grouped_mm(x_AD, self.w_up_EFD.to(dtype).transpose(-2, -1), offs=offsets_E)
        h_AF = F.silu(gate_AF) * up_AF
        y_AD = F.grouped_mm(h_AF, self.w_down_EDF.to(dtype).transpose(-2, -1), offs=offsets_E)
        y_SKD = _PermuteRows.apply(y_AD, inverse_A, order_A).view(S, K, -1)  # back to slot order
        return torch.bmm(weights_SK.unsqueeze(1), y_SKD).squeeze(1)  # (S, 1, K) @ (S, K, D)

    # --- reference loop dispatch ------------------------------------------------------------
    def _expert(self, x_RD: torch.Tensor, e: int) -> torch.Tensor:
        dtype = x_RD.dtype
        gate = F.linear(x_RD, self.w_gate_EFD[e].to(dtype))
        up = F.linear(x_RD, self.w_up_EFD[e].to(dtype))
        return F.linear(F.silu(gate) * up, self.w_down_EDF[e].to(dtype))

    def _loop(self, x_SD: torch.Tensor, topk_idx_SK: torch.Tensor, weights_SK: torch.Tensor) -> torch.Tensor:
        K = topk_idx_SK.shape[1]
        expert_A = topk_idx_SK.reshape(-1)
        weight_A = weights_SK.reshape(-1)
        y_SD = torch.zeros_like(x_SD)
        for e in range(self.n_experts):
            slots_R = (expert_A == e).nonzero().squeeze(1)
            if slots_R.numel() == 0:
                continue
            token_R = slots_R // K
            y_RD = self._expert(x_SD.index_select(0, token_R), e) * weight_A[slots_R].unsqueeze(1)
            y_SD = y_SD.index_add(0, token_R, y_RD)
        return y_SD


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The autocast dtype when autocast is on for x's device (grouped_mm is not autocast), else x's."""
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return x.dtype


class _GatherRows(Function):
    """x_SD -> x_SD[token_A]: each token repeated K times, in expert-sorted order.
    Backward: grad_x[s] = sum_k grad[inverse[s*K + k]] -- a gather and a sum, no scatter."""

    @staticmethod
    def forward(ctx, x_SD: torch.Tensor, token_A: torch.Tensor, inverse_A: torch.Tensor, K: int) -> torch.Tensor:  # noqa: ANN001
        ctx.save_for_backward(inverse_A)
        ctx.K = K
        return x_SD.index_select(0, token_A)

    @staticmethod
    def backward(ctx, grad_AD: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:  # noqa: ANN001
        (inverse_A,) = ctx.saved_tensors
        D = grad_AD.shape[-1]
        grad_SD = grad_AD.index_select(0, inverse_A).view(-1, ctx.K, D).sum(dim=1)
        return grad_SD, None, None, None


class _PermuteRows(Function):
    """y -> y[perm] for a permutation whose inverse is known; backward is grad[inverse]."""

    @staticmethod
    def forward(ctx, y_AD: torch.Tensor, perm_A: torch.Tensor, inverse_A: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        ctx.save_for_backward(inverse_A)
        return y_AD.index_select(0, perm_A)

    @staticmethod
    def backward(ctx, grad_AD: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # noqa: ANN001
        (inverse_A,) = ctx.saved_tensors
        return grad_AD.index_select(0, inverse_A), None, None
