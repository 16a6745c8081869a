"""DP-SGD through Opacus: validation, Poisson loader, noise calibration, and secure noise."""

from __future__ import annotations

import contextlib
import math
import secrets
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from tabsynth.errors import PrivacyConfigError
from tabsynth.privacy.accountant import default_delta


def resolve_delta(delta: float | None, n: int) -> float:
    """The default ``min(1e-5, n ** -1.5)``; refuse ``delta >= 1/n`` (privacy.md rule 3)."""
    if delta is None:
        return default_delta(n)
    if not isinstance(delta, (int, float)) or not 0 < delta < 1:
        raise PrivacyConfigError(f"delta must be in (0, 1), got {delta!r}")
    if delta >= 1.0 / n:
        raise PrivacyConfigError(
            f"delta={delta:g} is not below 1/n = {1.0 / n:.3g} for {n} rows: such a delta allows publishing a "
            f"whole row. Use delta <= {default_delta(n):.2g} (the default) or leave it unset")
    return float(delta)


def check_private_params(model: Any) -> list[str]:
    """Problems with the DP settings of a model (reported with its other parameter problems)."""
    out = []
    eps = model.epsilon
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not math.isfinite(eps) or eps <= 0:
        out.append(f"epsilon must be a positive finite number, got {eps!r}")
    c = model.max_grad_norm
    if not isinstance(c, (int, float)) or c <= 0:
        out.append(f"max_grad_norm must be positive, got {c!r}")
    share = model.preprocessing_epsilon_share
    if not isinstance(share, (int, float)) or not 0 < share < 1:
        out.append(f"preprocessing_epsilon_share must be in (0, 1), got {share!r}")
    m_share = getattr(model, "marginal_epsilon_share", 0.0)
    if not isinstance(m_share, (int, float)) or isinstance(m_share, bool) or not 0 <= m_share < 1:
        out.append(f"marginal_epsilon_share must be in [0, 1), got {m_share!r}")
    elif isinstance(share, (int, float)) and share + m_share >= 1:
        out.append(f"preprocessing_epsilon_share + marginal_epsilon_share must be below 1 (training needs a "
                   f"share), got {share!r} + {m_share!r}")
    weight = getattr(model, "marginal_weight", 0.0)
    if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight < 0:
        out.append(f"marginal_weight must be a non-negative number, got {weight!r}")
    return out


def validate_module(module: nn.Module) -> None:
    """Refuse modules Opacus cannot make private (BatchNorm above all), listing every problem."""
    from opacus.validators import ModuleValidator

    errors = ModuleValidator.validate(module, strict=False)
    if errors:
        raise PrivacyConfigError("module cannot be trained with DP-SGD: " + "; ".join(map(str, errors)))


class GaussianNoise:
    """Gaussian noise for the preprocessing statistics: seeded for tests, or from the OS CSPRNG."""

    def __init__(self, seed: int | None, secure: bool) -> None:
        self.secure = secure
        self._rng = np.random.default_rng(seed) if not secure else None
        self._sys = secrets.SystemRandom() if secure else None

    def normal(self, loc: float, scale: float, size: Any = None) -> np.ndarray:
        if not self.secure:
            return self._rng.normal(loc, scale, size)
        n = int(np.prod(size)) if size is not None else 1
        draws = np.array([self._sys.gauss(loc, scale) for _ in range(n)])  # not a hot path: one per bin
        return draws.reshape(size) if size is not None else draws[0]


def make_private(module: nn.Module, optimizer: torch.optim.Optimizer, data: torch.Tensor, batch_size: int,
                 noise_multiplier: float, max_grad_norm: float, *, secure_mode: bool, seed: int | None):
    """Wrap a module, optimizer and a Poisson-sampling loader over ``data`` with Opacus."""
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    validate_module(module)
    try:
        with quiet_opacus():
            engine = PrivacyEngine(accountant="rdp", secure_mode=secure_mode)
    except ImportError as exc:
        raise PrivacyConfigError(
            "secure_mode=True needs Opacus' cryptographic RNG (the torchcsprng package), which is not "
            "installed; install it for production releases or use secure_mode=False for testing") from exc
    loader = DataLoader(TensorDataset(data), batch_size=batch_size, shuffle=False)
    generator = None
    if not secure_mode and seed is not None:
        generator = torch.Generator(device=data.device)
        generator.manual_seed(seed)
    with quiet_opacus():
        gsm, dp_opt, dp_loader = engine.make_private(
            module=module, optimizer=optimizer, data_loader=loader, noise_multiplier=noise_multiplier,
            max_grad_norm=max_grad_norm, poisson_sampling=True, noise_generator=generator,
            loss_reduction="mean")
    return engine, gsm, dp_opt, dp_loader


@contextlib.contextmanager
def quiet_opacus() -> Iterator[None]:
    """Silence Opacus/torch notices that say nothing to a tabsynth user (the model records secure_mode)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Secure RNG turned off.*")
        warnings.filterwarnings("ignore", message=".*Optimal order is the largest alpha.*")
        warnings.filterwarnings("ignore", message=".*Full backward hook is firing.*")
        yield


def sample_rate(n: int, batch_size: int) -> tuple[float, int]:
    """Opacus' Poisson rate ``1 / len(loader)`` and the loader's length (steps per epoch)."""
    steps = math.ceil(n / batch_size)
    return 1.0 / steps, steps
