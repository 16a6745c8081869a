"""Hyperparameters in the scikit-learn style: the constructor stores them as given, ``get_params``
returns them, defaults that differ under DP are resolved only when used, and every value is
validated once, at ``fit``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from tabsynth.errors import ConfigError
from tabsynth.privacy.config import DPConfig

if TYPE_CHECKING:
    from tabsynth.privacy.trainer import StepRule

#: The DP keywords every model takes as shorthand for fields of its ``dp`` settings.
DP_SHORTHAND = ("epsilon", "delta", "max_grad_norm")


class Hyperparameters:
    """Constructor arguments, their DP-dependent defaults and their validation."""

    #: Defaults of parameters left as None, as (without DP, under DP); families extend it. Under DP,
    #: None: the family's ``_DP_STEPS`` rule sizes them from the noisy row count.
    _DEFAULTS: dict[str, tuple[Any, Any]] = {"epochs": (300, None), "batch_size": (500, None)}
    #: Defaults sized at fit time, in words, as (without DP, under DP); None where the code's value holds.
    _RULES: dict[str, tuple[str | None, str | None]] = {}
    #: Mixed-precision choices: autocast dtype (None: full fp32).
    _PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    #: Sizes epochs and batch size under DP when they are left as None.
    _DP_STEPS: StepRule
    #: The family's docstring before :func:`~tabsynth.models.defaults.document_defaults` added the defaults.
    _raw_doc: ClassVar[str]

    # Constructor arguments every family takes (``_store`` sets them; each family annotates its own).
    epochs: int | None
    batch_size: int | None
    numerical: str
    max_categories: int
    device: str
    seed: int | None
    verbose: bool
    precision: str
    epsilon: float | None
    delta: float | None
    max_grad_norm: float | None
    dp: DPConfig | None
    #: The device a fit runs on.
    device_: torch.device

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not inspect.isabstract(cls) and "__init__" in cls.__dict__:
            from tabsynth.models.defaults import document_defaults

            document_defaults(cls)

    def _store(self, params: dict[str, Any]) -> None:
        """Keep the constructor's arguments as given (sequences as tuples): ``self._store(locals())``."""
        for name in self._param_names():
            value = params[name]
            setattr(self, name, tuple(value) if isinstance(value, list) else value)

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor arguments, as given (scikit-learn's contract). With ``deep``, the parameters of
        any argument that is itself an estimator follow as ``name__param``."""
        out = {name: getattr(self, name) for name in self._param_names()}
        if deep:
            for name, value in list(out.items()):
                if hasattr(value, "get_params") and not isinstance(value, type):
                    out.update({f"{name}__{k}": v for k, v in value.get_params(deep=True).items()})
        return out

    def set_params(self, **params: Any) -> Hyperparameters:
        """Set constructor arguments (``name__param`` for a nested estimator's); returns self. The new
        values take effect at the next ``fit``."""
        names = self._param_names()
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in names:
                raise ConfigError(f"{type(self).__name__} has no parameter {name!r}; its parameters are "
                                  f"{', '.join(names)}")
            if sub:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, tuple(value) if isinstance(value, list) else value)
        for name, sub_params in nested.items():
            inner = getattr(self, name)
            if not hasattr(inner, "set_params"):
                raise ConfigError(f"{type(self).__name__}.{name} is {type(inner).__name__}, which has no "
                                  f"parameters to set: give {name}= a new value instead")
            inner.set_params(**sub_params)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params(deep=False).items())})"

    # --- DP settings --------------------------------------------------------------------------------
    @property
    def _private(self) -> bool:
        """Whether this model trains under differential privacy."""
        return self.epsilon is not None or self.dp is not None

    def dp_config(self) -> DPConfig | None:
        """The DP settings of a fit: ``dp`` with the ``epsilon``, ``delta`` and ``max_grad_norm``
        keywords applied on top, and no marginal release when the family's settings would not use
        it (its share goes to training); None without DP. Raises :class:`PrivacyConfigError` if invalid."""
        if not self._private:
            return None
        if self.dp is not None and not isinstance(self.dp, DPConfig):
            raise ConfigError(f"dp must be a tabsynth.DPConfig, got {type(self.dp).__name__}")
        given = {k: getattr(self, k) for k in DP_SHORTHAND if getattr(self, k) is not None}
        config = dataclasses.replace(self.dp, **given) if self.dp is not None else DPConfig(**given)
        if config.marginal_epsilon_share and not self._uses_marginals():
            config = dataclasses.replace(config, marginal_epsilon_share=0.0)
        return config

    def _uses_marginals(self) -> bool:
        """Whether a DP fit with these settings reads the noisy marginals (measured only if so); a
        family that pulls towards them says so (:class:`~tabsynth.models.marginal_matching.MarginalMatching`)."""
        return False

    def resolved_params(self) -> dict[str, Any]:
        """Constructor arguments with every ``None`` left to a default replaced by the value used
        (e.g. ``batch_size`` and ``pac``, which differ with and without DP); under DP the settings
        of ``dp`` appear as flat keys."""
        out = self.get_params(deep=False)
        dp = self.dp_config()
        out.pop("dp")
        if dp is not None:
            out.update(dp.to_dict())
        for name, value in out.items():
            if value is not None:
                continue
            if name in self._DEFAULTS:
                out[name] = self._resolved(name)
                if out[name] is None:  # sized at fit time: the value used, once known
                    fitted = getattr(self, {"epochs": "_fit_epochs", "batch_size": "_fit_batch"}[name], None)
                    if fitted is not None or dp is not None:
                        out[name] = fitted if fitted is not None else self._DP_STEPS.describe(name)
            elif isinstance(getattr(type(self), f"_{name}", None), property):
                out[name] = getattr(self, f"_{name}")
        return out

    def _resolved(self, name: str) -> Any:
        value = getattr(self, name)
        if value is not None:
            return value
        plain, private = self._DEFAULTS[name]
        return private if self._private else plain

    @property
    def _epochs(self) -> int:
        return self._resolved("epochs")

    @property
    def _batch_size(self) -> int:
        return self._resolved("batch_size")

    # --- validation -------------------------------------------------------------------------------
    def _validate_params(self) -> None:
        """Every problem with the hyperparameters in one :class:`ConfigError` (DP ones first, as a
        :class:`PrivacyConfigError`)."""
        self.dp_config()
        problems = []
        for name in ("epochs", "batch_size"):
            v = self._resolved(name)
            if v is None:  # unset and sized at fit time (the DP step rule, or the family's own rule)
                continue
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                problems.append(f"{name} must be a positive integer, got {v!r}")
        if self.seed is not None and (not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool)):
            problems.append(f"seed must be an integer or None, got {self.seed!r}")
        problems += self._check_params()
        if problems:
            raise ConfigError(f"{type(self).__name__}: " + "; ".join(problems))

    def _check_params(self) -> list[str]:
        """A family's own parameter problems, as sentences."""
        return []

    def _check_precision(self, device: torch.device) -> None:
        if self.precision not in self._PRECISIONS:
            raise ConfigError(f"precision={self.precision!r}: use one of {', '.join(self._PRECISIONS)}")
        if self.precision != "fp32" and self._private:
            raise ConfigError(f"precision={self.precision!r} is for training without DP; DP-SGD clips and "
                              "noises in fp32: leave precision='fp32' when epsilon is set")
        if self.precision == "fp16" and device.type != "cuda":
            raise ConfigError("precision='fp16' needs a CUDA device (gradient scaling); use 'bf16' on CPU")

    def _autocast(self) -> Any:
        """Autocast for the forward passes of the non-DP loop (a no-op in fp32)."""
        dtype = self._PRECISIONS.get(getattr(self, "precision", "fp32"))
        if dtype is None or self._private:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_.type, dtype=dtype)

    def _grad_scaler(self) -> Any:
        return torch.amp.GradScaler("cuda") if getattr(self, "precision", "fp32") == "fp16" else None
