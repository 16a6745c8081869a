"""Generative models: the conditional GAN (CTGAN) and the tabular VAE (TVAE)."""

from tabsynth.models.gan import CTGAN
from tabsynth.models.persistence import load
from tabsynth.models.vae import TVAE

__all__ = ["CTGAN", "TVAE", "load"]
