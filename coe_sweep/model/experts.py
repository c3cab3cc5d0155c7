"""The N routed SwiGLU experts of one layer and the token dispatch that runs them.

Legend: S tokens (B*T flattened), K experts per token, A = S*K token-slots (assignments),
E = N routed experts, D model width, F expert width.
Weights are stored (E, out, in) -- `w_gate_EFD`, `w_up_EFD` (E, F, D) and `w_down_EDF` (E, D, F) --
and passed transposed to `F.grouped_mm` (the layout its CPU and CUDA kernels accept).

Dispatch ("grouped", the fast path) reads as four verbs:
  1. sort the A token-slots by expert (one stable argsort) and gather the token rows once,
  2. count slots per expert (`bincount`) -> int32 `cumsum` offsets,
  3. grouped matmuls over the sorted rows: gate and up fused into ONE (E, 2F, D) matmul (the weights
     are concatenated per call; the parameters keep their contract names), then down,
  4. add each token's K rows back (a 0/1 CSR (S, A) matrix times the rows on CPU fp32, a permuted
     gather + sum elsewhere). The gate weight scales the F-wide hidden row, not the D-wide output.
The gather and the combine are each other's adjoint, so custom autograd functions make every
backward a gather or a CSR sum as well: no scatter/index_add, no `.item()` syncs, no per-expert
Python loop (grouped_mm loops over experts inside ATen on CPU).
On CPU the path runs in token chunks (CPU_CHUNK_BYTES, below); numbers in
benchmarks/layer_throughput.py.

"loop" is the reference path: a Python loop over experts with plain `F.linear`, which torch's
FlopCounterMode can see (it counts 0 for grouped_mm). Both compute the same function.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import Function

# On CPU the grouped path runs in token chunks whose largest (rows x max(D, 2F)) tensor stays under
# this size: glibc serves blocks >= 32 MiB with fresh mmap pages, and first-touch page faults cost
# about as much as the matmuls here (measured: a fresh 67 MB tensor ~40 ms to fill, a reused one
# ~10 ms). Chunking changes only memory traffic, never the result.
CPU_CHUNK_BYTES = 16 * 2**20


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
        E, D, Fw = self.w_down_EDF.shape
        dtype = x_SD.dtype
        # gate and up as ONE grouped matmul: x_AD is read once and its gradient is one tensor
        w_gate_up_T = torch.cat((self.w_gate_EFD, self.w_up_EFD), dim=1).to(dtype).transpose(-2, -1)
        w_down_T = self.w_down_EDF.to(dtype).transpose(-2, -1)
        tokens_per_chunk = S
        if x_SD.device.type == "cpu":
            row_bytes = max(D, 2 * Fw) * x_SD.element_size()
            tokens_per_chunk = max(1, CPU_CHUNK_BYTES // (row_bytes * K))
        if tokens_per_chunk >= S:
            return self._grouped_chunk(x_SD, topk_idx_SK, weights_SK, w_gate_up_T, w_down_T)
        return torch.cat([
            self._grouped_chunk(x_SD[a:a + tokens_per_chunk], topk_idx_SK[a:a + tokens_per_chunk],
                                weights_SK[a:a + tokens_per_chunk], w_gate_up_T, w_down_T)
            for a in range(0, S, tokens_per_chunk)
        ])

    def _grouped_chunk(self, x_SD: torch.Tensor, topk_idx_SK: torch.Tensor, weights_SK: torch.Tensor,
                       w_gate_up_T: torch.Tensor, w_down_T: torch.Tensor) -> torch.Tensor:
        Fw = w_down_T.shape[1]
        with torch.no_grad():
            slots = SlotMap.build(topk_idx_SK, w_down_T.shape[0])
        x_AD = _apply(_GatherRows, x_SD, slots)  # (A, D), rows sorted by expert
        gate_up_A2F = F.grouped_mm(x_AD, w_gate_up_T, offs=slots.offsets_E)
        # the gate weight scales the (narrower) hidden row instead of the output row: same function,
        # half the bytes, and the K-row combine below becomes an unweighted sum
        weight_A1 = weights_SK.reshape(-1).index_select(0, slots.order_A).unsqueeze(1)
        h_AF = _apply(_WeightedSwiGLU, gate_up_A2F, weight_A1, Fw)
        y_AD = F.grouped_mm(h_AF, w_down_T, offs=slots.offsets_E)
        return _apply(_SumRows, y_AD, slots)  # (S, D)

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


@dataclass
class SlotMap:
    """Bookkeeping (no gradient) that maps the A = S*K token-slots to expert-sorted rows.

    order_A[j] is the slot (s*K + k) held by sorted row j; token_A[j] = order_A[j] // K its token;
    offsets_E the int32 end offset of each expert's rows; sum_SA (CPU fp32/fp64 only) the sparse
    CSR (S, A) 0/1 matrix whose row s has ones at the K sorted rows of token s, so that
    `sum_SA @ y_AD` adds each token's K rows in one pass over y (no permuted copy, no scatter).
    """

    order_A: torch.Tensor
    token_A: torch.Tensor
    inverse_A: torch.Tensor
    offsets_E: torch.Tensor
    K: int
    sum_SA: torch.Tensor | None

    @staticmethod
    def build(topk_idx_SK: torch.Tensor, n_experts: int) -> SlotMap:
        S, K = topk_idx_SK.shape
        expert_A = topk_idx_SK.reshape(-1)
        order_A = torch.argsort(expert_A, stable=True)
        inverse_A = torch.empty_like(order_A)
        inverse_A[order_A] = torch.arange(order_A.numel(), device=order_A.device)
        offsets_E = torch.cumsum(torch.bincount(expert_A, minlength=n_experts), 0).to(torch.int32)
        return SlotMap(order_A, order_A // K, inverse_A, offsets_E, K, None)

    def sum_rows(self, y_AD: torch.Tensor) -> torch.Tensor:
        """out[s] = sum_k y_AD[inverse[s*K + k]]."""
        if y_AD.device.type == "cpu" and y_AD.dtype in (torch.float32, torch.float64):
            if self.sum_SA is None or self.sum_SA.dtype != y_AD.dtype:
                A = self.order_A.numel()
                S = A // self.K
                crow = torch.arange(0, A + 1, self.K, dtype=torch.int32)
                cols = self.inverse_A.view(S, self.K).sort(dim=1).values.reshape(-1).to(torch.int32)
                with warnings.catch_warnings():  # "sparse CSR support is in beta": known, tested here
                    warnings.simplefilter("ignore", UserWarning)
                    self.sum_SA = torch.sparse_csr_tensor(crow, cols, torch.ones(A, dtype=y_AD.dtype),
                                                          size=(S, A), check_invariants=False)
            return self.sum_SA @ y_AD
        # bf16 (no CPU sparse kernel) and CUDA: a permuted gather and a sum over K
        return y_AD.index_select(0, self.inverse_A).view(-1, self.K, y_AD.shape[-1]).sum(dim=1)


def _apply(fn: type[Function], *args: Any) -> torch.Tensor:
    """`fn.apply(*args)`, typed: torch's Function.apply is untyped."""
    out: torch.Tensor = fn.apply(*args)  # type: ignore[no-untyped-call]
    return out


class _GatherRows(Function):
    """x_SD -> x_SD[token_A]: each token repeated K times, in expert-sorted order.
    Backward: grad_x[s] = sum of the K rows of token s (SlotMap.sum_rows), no scatter."""

    @staticmethod
    def forward(ctx: Any, x_SD: torch.Tensor, slots: SlotMap) -> torch.Tensor:
        ctx.slots = slots
        return x_SD.index_select(0, slots.token_A)

    @staticmethod
    def backward(ctx: Any, grad_AD: torch.Tensor) -> tuple[torch.Tensor, None]:
        return ctx.slots.sum_rows(grad_AD.contiguous()), None


class _SumRows(Function):
    """y_AD (expert-sorted rows) -> out_SD, the sum of each token's K rows.
    Backward: grad_y = grad_out[token_A] (a gather)."""

    @staticmethod
    def forward(ctx: Any, y_AD: torch.Tensor, slots: SlotMap) -> torch.Tensor:
        ctx.slots = slots
        return slots.sum_rows(y_AD)

    @staticmethod
    def backward(ctx: Any, grad_SD: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad_SD.index_select(0, ctx.slots.token_A), None


class _WeightedSwiGLU(Function):
    """h = silu(gate) * up * w from the fused (A, 2F) gate|up rows. Backward writes the gate and up
    gradients straight into one (A, 2F) tensor (no split/cat) and recomputes silu(gate)."""

    @staticmethod
    def forward(ctx: Any, gate_up_A2F: torch.Tensor, weight_A1: torch.Tensor, Fw: int) -> torch.Tensor:
        gate_AF, up_AF = gate_up_A2F[:, :Fw], gate_up_A2F[:, Fw:]
        h_AF = F.silu(gate_AF).mul_(up_AF).mul_(weight_A1)
        ctx.save_for_backward(gate_up_A2F, weight_A1)
        ctx.Fw = Fw
        return h_AF

    @staticmethod
    def backward(ctx: Any, grad_AF: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        gate_up_A2F, weight_A1 = ctx.saved_tensors
        Fw = ctx.Fw
        gate_AF, up_AF = gate_up_A2F[:, :Fw], gate_up_A2F[:, Fw:]
        grad_A2F = torch.empty_like(gate_up_A2F)
        silu_AF = F.silu(gate_AF)
        grad_up_unweighted = grad_AF * silu_AF  # d h / d up without the gate weight
        grad_weight_A1 = (grad_up_unweighted * up_AF).sum(dim=1, keepdim=True)
        torch.mul(grad_up_unweighted, weight_A1, out=grad_A2F[:, Fw:])
        grad_silu_AF = grad_AF.mul(up_AF).mul_(weight_A1)
        torch.ops.aten.silu_backward.grad_input(grad_silu_AF, gate_AF, grad_input=grad_A2F[:, :Fw])
        return grad_A2F, grad_weight_A1, None
