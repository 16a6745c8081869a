"""Device choice and local seeding (the global RNG is never reseeded behind the user's back)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from tabsynth.errors import ConfigError


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when present, else CPU; ``"cuda"`` without a GPU is a :class:`ConfigError`."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise ConfigError(f"device={device!r}: use 'auto', 'cpu' or 'cuda'")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device='cuda' but no CUDA GPU is available; use device='auto' or 'cpu'")
    return torch.device(device)


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Run a block with torch's global RNG seeded, restoring the caller's RNG state afterwards."""
    if seed is None:
        yield
        return
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A local torch generator on ``device``."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g
