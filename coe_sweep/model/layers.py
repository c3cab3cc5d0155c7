"""Small building blocks of the LM: RMSNorm, rotary position embeddings, a dense SwiGLU FFN.

Parameters (coe_sweep/accounting/params.py counts exactly these): RMSNorm has a weight and no bias;
rotary embeddings have none (cos/sin tables are non-persistent buffers); SwiGLU has three
bias-free linear maps `w_gate`, `w_up` (D -> F) and `w_down` (F -> D).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """y = x / rms(x) * weight, computed in fp32 and cast back to the input dtype."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.rms_norm(x.float(), (x.shape[-1],), self.weight.float(), self.eps)
        return y.to(x.dtype)


class Rotary(nn.Module):
    cos_TH: torch.Tensor
    sin_TH: torch.Tensor

    """Rotary position embedding (half-split layout, as in LLaMA/NeoX); no parameters."""

    def __init__(self, head_dim: int, max_seq_len: int, theta: float) -> None:
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        angles_TH = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), inv_freq)
        self.register_buffer("cos_TH", angles_TH.cos(), persistent=False)
        self.register_buffer("sin_TH", angles_TH.sin(), persistent=False)

    def forward(self, x_BHTd: torch.Tensor) -> torch.Tensor:
        T = x_BHTd.shape[-2]
        cos = self.cos_TH[:T].to(x_BHTd.dtype)
        sin = self.sin_TH[:T].to(x_BHTd.dtype)
        x1, x2 = x_BHTd.chunk(2, dim=-1)
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)), no biases. Used for the (fused-width) shared expert."""

    def __init__(self, d_model: int, d_hidden: int) -> None:
        super().__init__()
        self.w_gate = nn.Linear(d_model, d_hidden, bias=False)
        self.w_up = nn.Linear(d_model, d_hidden, bias=False)
        self.w_down = nn.Linear(d_hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))
        return y


def init_weights(module: nn.Module, std: float) -> None:
    """Normal(0, std) for every linear/embedding/expert weight, ones for norms (nanoGPT-style)."""
    for sub in module.modules():
        if isinstance(sub, RMSNorm):
            nn.init.ones_(sub.weight)
        elif isinstance(sub, (nn.Linear, nn.Embedding)):
            nn.init.normal_(sub.weight, mean=0.0, std=std)
        else:
            for name, p in sub.named_parameters(recurse=False):
                if name.startswith("w_"):
                    nn.init.normal_(p, mean=0.0, std=std)
