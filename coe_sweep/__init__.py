"""coe-sweep: IsoFLOP sweeps of Chain-of-Experts and Mixture-of-Experts language models."""

__version__ = "0.1.0"
