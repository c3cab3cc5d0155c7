"""Small building blocks of the LM: RMSNorm, rotary position embeddings, a dense SwiGLU FFN.

Parameters (accounting counts exactly these): RMSNorm has a weight and no bias; rotary embeddings
have none (cos/sin tables are non-persistent buffers); SwiGLU has two bias-free linear maps,
`w_gate_up` (D -> 2F: gate rows [0, F), up rows [F, 2F), one matmul for both) and `w_down` (F -> D).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """y = x / rms(x) * weight, computed in fp32 and cast back to the input dtype.

    One autograd Function with a hand-written backward: on CPU `F.rms_norm` decomposes into ~20 ops
    (dtype round trips included) and measured 5x the time of this one at the sweeps' widths."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling():  # the compiler fuses the functional form into one kernel
            return F.rms_norm(x.float(), (x.shape[-1],), self.weight.float(), self.eps).to(x.dtype)
        return _apply(_RMSNorm, x, self.weight, self.eps)


class _RMSNorm(torch.autograd.Function):
    """Saves x and rstd = 1 / sqrt(mean(x^2) + eps) (one number per row); with xhat = x * rstd and
    gw = grad * weight: grad_x = rstd * (gw - xhat * mean(gw * xhat)), grad_weight = sum(grad * xhat)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        x32 = _at_least_fp32(x)
        rstd = torch.rsqrt(x32.square().mean(dim=-1, keepdim=True).add_(eps))
        ctx.save_for_backward(x, weight, rstd)
        return (x32 * rstd).mul_(_at_least_fp32(weight)).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        x, weight, rstd = ctx.saved_tensors
        grad32 = _at_least_fp32(grad)
        xhat = _at_least_fp32(x) * rstd
        grad_weight = (grad32 * xhat).reshape(-1, x.shape[-1]).sum(dim=0)
        gw = grad32 * _at_least_fp32(weight)
        dot = (gw * xhat).mean(dim=-1, keepdim=True)
        grad_x = gw.sub_(xhat.mul_(dot)).mul_(rstd)
        return grad_x.to(x.dtype), grad_weight.to(weight.dtype), None


def _apply(fn: type[torch.autograd.Function], *args: Any) -> torch.Tensor:
    """`fn.apply(*args)`, typed: torch's Function.apply is untyped."""
    out: torch.Tensor = fn.apply(*args)  # type: ignore[no-untyped-call]
    return out


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


class Rotary(nn.Module):
    """Rotary position embedding (half-split layout, as in LLaMA/NeoX) of (B, T, heads, hd) tensors;
    no parameters. y = x * cos + swap_halves(x) * sin_signed, with the tables laid out (T, heads, hd)
    so that every product broadcasts over the batch only: broadcasting a (T, 1, hd) table over heads
    measured 5x slower on CPU. One autograd Function whose backward is the inverse rotation, so
    nothing is saved per token, and q and k (adjacent heads of the qkv projection) rotate in one call."""

    cos_Td: torch.Tensor
    sin_Td: torch.Tensor

    def __init__(self, head_dim: int, max_seq_len: int, theta: float) -> None:
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        angles_TH = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), inv_freq)
        cos_TH, sin_TH = angles_TH.cos(), angles_TH.sin()
        self.register_buffer("cos_Td", torch.cat((cos_TH, cos_TH), dim=-1), persistent=False)
        self.register_buffer("sin_Td", torch.cat((-sin_TH, sin_TH), dim=-1), persistent=False)  # signed

    def forward(self, x_BTNd: torch.Tensor) -> torch.Tensor:
        _, T, N, d = x_BTNd.shape
        cos_TNd = self.cos_Td[:T, None].to(x_BTNd.dtype).expand(T, N, d).contiguous()
        sin_TNd = self.sin_Td[:T, None].to(x_BTNd.dtype).expand(T, N, d).contiguous()
        return _apply(_Rotate, x_BTNd, cos_TNd, sin_TNd)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x * cos + (x2, x1) * sin for the halves (x1, x2) of the last dim; a new contiguous tensor."""
    h = x.shape[-1] // 2
    return torch.cat((x[..., h:], x[..., :h]), dim=-1).mul_(sin).addcmul_(x, cos)


class _Rotate(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(cos, sin)
        return _rotate(x, cos, sin)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        cos, sin = ctx.saved_tensors
        return _rotate(grad, cos, sin.neg()), None, None  # R(theta)^T = R(-theta): the swap is symmetric


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)), no biases. Used for the (fused-width) shared expert."""

    def __init__(self, d_model: int, d_hidden: int) -> None:
        super().__init__()
        self.w_gate_up = nn.Linear(d_model, 2 * d_hidden, bias=False)
        self.w_down = nn.Linear(d_hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.w_gate_up(x).chunk(2, dim=-1)
        y: torch.Tensor = self.w_down(F.silu(gate) * up)
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
