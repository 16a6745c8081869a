"""The randomness a DP guarantee rests on, kept apart from the user's seed (docs/privacy.md rule 15).

Under DP every Gaussian release (preprocessing statistics, marginals, DP-SGD gradients), every
Poisson batch and every draw inside a DP-SGD step that touches real rows comes from one
:class:`Randomness` per fit, never from ``seed``. An attacker who knows the code, the seed and
all rows but one can then not replay a fit: two fits of the same table with the same seed give
different noise. ``seed`` still fixes the rest (initial weights, the generator's own draws,
synthetic rows).

Three sources:

- ``"fresh"`` (default): generators seeded with 128 bits from the operating system's entropy pool
  at every fit;
- ``"secure"`` (``secure_mode=True``): every draw is read from the OS cryptographic RNG
  (``os.urandom``): uniforms with 53 random bits, Gaussians by Box-Muller, and each noise value
  the sum of four Gaussians halved, Opacus' defence against floating-point attacks on Gaussian
  sampling (Holohan & Braghin 2021);
- ``"reproducible"``: derived from a seed, for tests only, switched on by the
  :func:`reproducible_noise` context manager. Its statement says "not private"; releases and the
  command line refuse it.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from tabsynth.errors import PrivacyConfigError

MODES = ("fresh", "secure", "reproducible")
_REPRODUCIBLE: contextvars.ContextVar[int | None] = contextvars.ContextVar("tabsynth_reproducible_noise",
                                                                           default=None)
_TWO_PI = 2.0 * math.pi


@contextlib.contextmanager
def reproducible_noise(seed: int = 0) -> Iterator[None]:
    """Tests only: DP noise and batches inside this block are derived from ``seed``.

    A fit made inside is NOT differentially private against anyone who knows ``seed`` (a replay
    reproduces its noise); its ``privacy_spent()`` says so, and ``release()`` refuses to run here.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise PrivacyConfigError(f"reproducible_noise(seed) takes an integer, got {seed!r}")
    token = _REPRODUCIBLE.set(int(seed))
    try:
        yield
    finally:
        _REPRODUCIBLE.reset(token)


def reproducible_noise_active() -> bool:
    """Whether :func:`reproducible_noise` is in force (releases refuse to run then)."""
    return _REPRODUCIBLE.get() is not None


def _os_words(n: int) -> np.ndarray:
    """``n`` uniformly random 64-bit words from the OS cryptographic RNG."""
    return np.frombuffer(os.urandom(8 * n), dtype=np.uint64) if n else np.zeros(0, np.uint64)


def _secure_uniform(n: int) -> np.ndarray:
    """Uniforms on (0, 1] with 53 random bits each (never 0, so log() is finite)."""
    return ((_os_words(n) >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0 ** -53


def _secure_standard_normal(n: int) -> np.ndarray:
    """Standard Gaussians: Box-Muller on CSPRNG uniforms, four summed and halved per value."""
    if n == 0:
        return np.zeros(0)
    pairs = -(-4 * n // 2)
    u1, u2 = _secure_uniform(pairs), _secure_uniform(pairs)
    radius = np.sqrt(-2.0 * np.log(u1))
    z = np.concatenate([radius * np.cos(_TWO_PI * u2), radius * np.sin(_TWO_PI * u2)])[: 4 * n]
    return z.reshape(4, n).sum(0) / 2.0


class Randomness:
    """One fit's private randomness: Gaussian noise, Poisson batches, secret seeds for DP steps.

    Build it with :meth:`for_fit`; ``mode`` is one of :data:`MODES`.
    """

    def __init__(self, mode: str, seed: int | None = None, rank: int = 0) -> None:
        if mode not in MODES:
            raise PrivacyConfigError(f"randomness mode {mode!r} is not one of {', '.join(MODES)}")
        self.mode = mode
        if mode == "reproducible":
            entropy: Any = [int(seed or 0), 0x5EED, rank]
        else:
            entropy = int.from_bytes(os.urandom(16), "little")
        self._seq = np.random.SeedSequence(entropy)
        self._np = np.random.default_rng(self._seq.spawn(1)[0])
        self._torch: dict[str, torch.Generator] = {}

    @classmethod
    def for_fit(cls, secure: bool, rank: int = 0) -> Randomness:
        """The source a DP fit uses: secure when asked, reproducible inside :func:`reproducible_noise`,
        else fresh OS entropy. The user's ``seed`` plays no part."""
        seed = _REPRODUCIBLE.get()
        if secure and seed is not None:
            raise PrivacyConfigError("secure_mode=True and reproducible_noise() exclude each other: secure mode "
                                     "draws every noise value from the OS cryptographic RNG")
        if secure:
            return cls("secure", rank=rank)
        return cls("reproducible", seed, rank) if seed is not None else cls("fresh", rank=rank)

    @property
    def private(self) -> bool:
        """False for the test-only reproducible source."""
        return self.mode != "reproducible"

    # --- numpy side: preprocessing and marginal releases ----------------------------------------
    def normal(self, loc: float, scale: float, size: Any = None) -> Any:
        """Gaussian noise like ``numpy.random.Generator.normal``."""
        if self.mode != "secure":
            return self._np.normal(loc, scale, size)
        n = int(np.prod(size)) if size is not None else 1
        z = loc + scale * _secure_standard_normal(n)
        return z.reshape(size) if size is not None else float(z[0])

    # --- torch side: DP-SGD ---------------------------------------------------------------------
    def _generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._torch:
            g = torch.Generator(device=device)
            g.manual_seed(int(self._seq.spawn(1)[0].generate_state(1, np.uint64)[0]) & (2**63 - 1))
            self._torch[key] = g
        return self._torch[key]

    def torch_normal(self, std: float, like: torch.Tensor) -> torch.Tensor:
        """Gaussian noise of ``like``'s shape, dtype and device (the DP-SGD gradient noise)."""
        if self.mode == "secure":
            z = _secure_standard_normal(like.numel()) * std
            return torch.from_numpy(z).to(device=like.device, dtype=like.dtype).reshape(like.shape)
        return torch.normal(0.0, std, size=like.shape, device=like.device, dtype=like.dtype,
                            generator=self._generator(like.device))

    def poisson_batch(self, n: int, q: float) -> torch.Tensor:
        """Indices of a Poisson sample of ``range(n)``: each row independently with probability ``q``.

        Below q = 0.5 the size is drawn as Binomial(n, q) and the rows as a uniform subset of that
        size (the same law, in O(batch)); the branch depends on ``q`` only, never on a draw."""
        if q >= 1.0:
            return torch.arange(n)
        if self.mode == "secure":
            cut = np.uint64(min(int(q * 2.0 ** 64), 2 ** 64 - 1))
            return torch.from_numpy(np.flatnonzero(_os_words(n) < cut).astype(np.int64))
        g = self._generator(torch.device("cpu"))
        if q >= 0.5:
            return (torch.rand(n, generator=g, dtype=torch.float64) < q).nonzero().reshape(-1)
        k = int(torch.binomial(torch.tensor(float(n), dtype=torch.float64),
                               torch.tensor(float(q), dtype=torch.float64), generator=g))
        chosen = torch.empty(0, dtype=torch.long)
        while len(chosen) < k:  # distinct uniform draws; exchangeable, so any k of them are uniform
            extra = torch.randint(0, n, ((k - len(chosen)) * 11 // 10 + 8,), generator=g)
            chosen = torch.unique(torch.cat([chosen, extra]))
        if len(chosen) > k:
            chosen = chosen[torch.randperm(len(chosen), generator=g)[:k]]
        return chosen

    def secret_seed(self) -> int:
        """A 63-bit seed no one outside this fit can know (for draws inside a DP-SGD step)."""
        if self.mode == "secure":
            return int(_os_words(1)[0]) & (2**63 - 1)
        return int(self._np.integers(2**63))

    @contextlib.contextmanager
    def isolated(self, device: torch.device) -> Iterator[None]:
        """Run a block on torch's global RNG seeded secretly, then restore the caller's stream.

        The draws of a DP-SGD step's real batch (its size is private) happen inside, so the
        seeded stream outside (the generator's own draws) never depends on a batch size."""
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            seed = self.secret_seed()
            torch.default_generator.manual_seed(seed)
            if device.type == "cuda":
                torch.cuda.manual_seed(seed)
            yield
