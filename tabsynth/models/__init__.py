"""Generative models: the conditional GAN (CTGAN), the tabular VAE (TVAE) and the autoregressive
model over tokenised columns (TabularAR)."""

from tabsynth.models.ar import TabularAR
from tabsynth.models.gan import CTGAN
from tabsynth.models.persistence import load
from tabsynth.models.vae import TVAE

__all__ = ["CTGAN", "TVAE", "TabularAR", "load"]
