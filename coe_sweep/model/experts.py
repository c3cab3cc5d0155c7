"""The N routed SwiGLU experts of one layer and the paths that run them.

Legend: S tokens (B*T flattened), K experts per token, A = S*K token-slots (assignments),
E = N routed experts, D model width, F expert width.
Parameters (stored (E, out, in), the layout grouped_mm takes transposed): `w_gate_up_E2FD` (E, 2F, D),
gate rows [0, F) and up rows [F, 2F) of each expert stored as ONE tensor so that one matmul computes
both, and `w_down_EDF` (E, D, F). An expert is `down(silu(gate(x)) * up(x))`, no biases.

"grouped" (the fast path) calls coe_sweep/model/dispatch.py (sort, offsets, grouped matmuls, sum
back): the custom op `coe_sweep::routed_ffn` under torch.compile (its backward is a custom op too),
so the model compiles and has no host syncs. On CPU the tokens go through it in chunks (CPU_CHUNK_BYTES, below); numbers in
benchmarks/layer_throughput.py.
"loop" is the reference path: a Python loop over experts with plain `F.linear`, which torch's
FlopCounterMode can see (it counts 0 for grouped_mm). Both compute the same function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from coe_sweep.model.dispatch import routed_experts

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
        self.d_expert = d_expert
        self.w_gate_up_E2FD = nn.Parameter(torch.empty(E, 2 * Fw, D))
        self.w_down_EDF = nn.Parameter(torch.empty(E, D, Fw))

    @property
    def n_experts(self) -> int:
        return self.w_down_EDF.shape[0]

    def forward(self, x_SD: torch.Tensor, topk_idx_SK: torch.Tensor, weights_SK: torch.Tensor) -> torch.Tensor:
        """sum_k weights[s,k] * FFN_{idx[s,k]}(x[s]) for every token s; returns (S, D)."""
        dtype = _compute_dtype(x_SD)
        x_SD, weights_SK = x_SD.to(dtype), weights_SK.to(dtype)
        if self.dispatch == "loop":
            return self._loop(x_SD, topk_idx_SK, weights_SK)
        w_gate_up, w_down = self.w_gate_up_E2FD.to(dtype), self.w_down_EDF.to(dtype)
        S, K = topk_idx_SK.shape
        tokens_per_chunk = S
        if x_SD.device.type == "cpu":
            row_bytes = max(x_SD.shape[1], 2 * self.d_expert) * x_SD.element_size()
            tokens_per_chunk = max(1, CPU_CHUNK_BYTES // (row_bytes * K))
        if tokens_per_chunk >= S:
            return routed_experts(x_SD, topk_idx_SK, weights_SK, w_gate_up, w_down)
        return torch.cat([
            routed_experts(x_SD[a:a + tokens_per_chunk], topk_idx_SK[a:a + tokens_per_chunk],
                           weights_SK[a:a + tokens_per_chunk], w_gate_up, w_down)
            for a in range(0, S, tokens_per_chunk)
        ])

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
        # all gate rows first, then all up rows (a weight copy): the product then splits into two
        # halves whose backward is one cat, where selecting strided gate/up columns would fill zeros
        w_gate_up = self.w_gate_up_E2FD.to(dtype).view(E, 2, Fw, D).transpose(0, 1).reshape(2 * E * Fw, D)
        gate_SH, up_SH = F.linear(x_SD, w_gate_up).chunk(2, dim=-1)  # H = E * F
        w_down = self.w_down_EDF.to(dtype).permute(1, 0, 2).reshape(D, E * Fw)
        return F.linear(F.silu(gate_SH) * up_SH, w_down)

    # --- reference loop dispatch ------------------------------------------------------------
    def _expert(self, x_RD: torch.Tensor, e: int) -> torch.Tensor:
        dtype, Fw = x_RD.dtype, self.d_expert
        gate = F.linear(x_RD, self.w_gate_up_E2FD[e, :Fw].to(dtype))
        up = F.linear(x_RD, self.w_gate_up_E2FD[e, Fw:].to(dtype))
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
    """The autocast dtype when autocast is on for x's device (the custom op is not autocast), else x's."""
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return x.dtype
