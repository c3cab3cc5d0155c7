"""Small blocks: the rotary Function equals the rotation formula (values and gradients), SwiGLU's fused gate|up."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from coe_sweep.model.layers import Rotary, SwiGLU


def _rotary_formula(x_BTNd: torch.Tensor, rotary: Rotary) -> torch.Tensor:
    T, h = x_BTNd.shape[1], x_BTNd.shape[-1] // 2
    cos, sin = rotary.cos_Td[:T, None, :h].to(x_BTNd.dtype), rotary.sin_Td[:T, None, h:].to(x_BTNd.dtype)
    x1, x2 = x_BTNd[..., :h], x_BTNd[..., h:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def test_rotary_equals_the_formula_and_its_backward_is_the_inverse_rotation() -> None:
    rotary = Rotary(8, 16, 10000.0).double()
    angles = torch.arange(16, dtype=torch.float64)[:, None] / 10000 ** (torch.arange(0, 8, 2) / 8)
    torch.testing.assert_close(rotary.cos_Td[:, :4].double(), angles.cos(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(rotary.sin_Td[:, 4:].double(), angles.sin(), rtol=1e-6, atol=1e-6)
    qkv = torch.randn(2, 10, 5, 8, dtype=torch.float64)
    x = qkv[:, :, :3].clone().requires_grad_(True)  # a strided slice, as the attention passes it
    strided = qkv.clone().requires_grad_(True)
    torch.testing.assert_close(rotary(strided[:, :, :3]), _rotary_formula(x, rotary))
    assert torch.autograd.gradcheck(lambda t: rotary(t), (x,))
    g = torch.randn(2, 10, 3, 8, dtype=torch.float64)
    rotary(x).backward(g)
    ref = x.detach().clone().requires_grad_(True)
    _rotary_formula(ref, rotary).backward(g)
    torch.testing.assert_close(x.grad, ref.grad)
    # a rotation keeps norms: the position encoding never rescales q or k
    torch.testing.assert_close(rotary(x).norm(dim=-1), x.norm(dim=-1))


def test_swiglu_gate_and_up_rows_of_the_fused_weight() -> None:
    m = SwiGLU(6, 4)
    x = torch.randn(3, 6)
    gate_w, up_w = m.w_gate_up.weight[:4], m.w_gate_up.weight[4:]
    ref = F.linear(F.silu(F.linear(x, gate_w)) * F.linear(x, up_w), m.w_down.weight)
    torch.testing.assert_close(m(x), ref)


def test_rmsnorm_function_equals_f_rms_norm_and_passes_gradcheck() -> None:
    from coe_sweep.model.layers import RMSNorm, _RMSNorm

    norm = RMSNorm(12, 1e-5).double()
    w = torch.randn(12, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        norm.weight.copy_(w)
    x = torch.randn(3, 5, 12, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(norm(x), F.rms_norm(x, (12,), w, 1e-5))
    assert torch.autograd.gradcheck(lambda t, v: _RMSNorm.apply(t, v, 1e-5), (x, w))
