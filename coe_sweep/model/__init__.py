"""CoE/MoE language model. `ModelConfig` is torch-free; the torch model lives in
`coe_sweep.model.lm` (import it explicitly so that accounting never pulls in torch)."""

from coe_sweep.model.config import ModelConfig

__all__ = ["ModelConfig"]
