"""Model files: one zip holding ``config.json`` and ``weights.pt`` (tensors only).

Loading never executes code: the JSON is parsed, and the tensors are read with
``torch.load(weights_only=True)``, which refuses any pickled object that is not a tensor.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from tabsynth.errors import ModelFileError
from tabsynth.models.device import resolve_device
from tabsynth.models.registry import MODELS, family_name
from tabsynth.privacy import PrivacySpent
from tabsynth.privacy.config import DPConfig
from tabsynth.transform import TableTransformer
from tabsynth.version import __version__

FORMAT = "tabsynth-model"
#: The layout of config.json; a file of another version is refused, never guessed at.
FORMAT_VERSION = 2


def save_model(model: Any, path: str | os.PathLike) -> Path:
    return write_model_file(path, model_config(model), model_tensors(model))


def model_config(model: Any) -> dict[str, Any]:
    """The JSON part of a fitted flat model's file."""
    params = model.get_params(deep=False)
    if model.privacy_spent().is_dp:
        params["seed"] = None  # never published under DP (docs/privacy.md rule 15)
    if params.get("dp") is not None:
        params["dp"] = params["dp"].to_dict()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tabsynth_version": __version__,
        "class": family_name(type(model)),
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
        "transformer": model.transformer_.to_dict(),
        "loss_history": model.loss_history_.to_dict(orient="list"),
        "n_rows": model.n_rows_,
        "privacy": model.privacy_spent().to_dict(),
    }


def model_tensors(model: Any) -> dict[str, torch.Tensor]:
    """The tensors of a fitted flat model's file: its networks' states and its extra tensors."""
    tensors = {f"{name}.{k}": v.detach().cpu() for name, mod in model._modules().items()
               for k, v in mod.state_dict().items()}
    tensors.update({f"extra.{k}": v.detach().cpu() for k, v in model._extra_tensors().items()})
    return tensors


def write_model_file(path: str | os.PathLike, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Path:
    """One zip holding ``config`` as JSON and ``tensors`` as a dict of tensors."""
    buf = io.BytesIO()
    torch.save(tensors, buf)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", json.dumps(config, default=_json_default))
        zf.writestr("weights.pt", buf.getvalue())
    return p


def load(path: str | os.PathLike, device: str | None = None) -> Any:
    """Load a model saved with ``model.save(path)``; never unpickles arbitrary objects."""
    config, raw = _read_file(Path(path))
    cls = MODELS.get(str(config.get("class")))
    if cls is None:
        raise ModelFileError(f"{path}: unknown model class {config.get('class')!r}")
    try:
        tensors = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError and friends: refuse, never execute
        raise ModelFileError(
            f"{path}: weights.pt holds something other than tensors and was refused unread ({type(exc).__name__})"
        ) from exc
    if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
        raise ModelFileError(f"{path}: weights.pt must hold a dict of tensors")
    restore = getattr(cls, "_restore_two_tables", None) if "two_tables" in config else None
    if "two_tables" in config and restore is None:
        raise ModelFileError(f"{path}: holds a person table and an event table, which {config.get('class')} "
                             "cannot load: it has no two-table mode")
    try:
        if restore is not None:  # a person table and its event table (tabsynth.models.sequence)
            return restore(config, tensors, device)
        return restore_model(cls, config, tensors, device)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: model file is inconsistent and cannot be loaded ({exc})") from exc


def _read_file(p: Path) -> tuple[dict[str, Any], bytes]:
    """The parsed config.json and the raw weights.pt of a model file, or a :class:`ModelFileError`
    saying what is wrong with the file."""
    if not p.exists():
        raise ModelFileError(f"{p}: model file not found")
    if p.is_dir():
        raise ModelFileError(f"{p}: is a folder, not a model file; give the path of the file model.save "
                             "or `tabsynth fit -o` wrote (e.g. model.tsyn)")
    try:
        return _read_zip(p)
    except PermissionError as exc:
        raise ModelFileError(f"{p}: cannot be read ({exc.strerror}); check the file's permissions") from exc
    except OSError as exc:
        raise ModelFileError(f"{p}: cannot be read as a model file ({exc.strerror or exc})") from exc


def _read_zip(p: Path) -> tuple[dict[str, Any], bytes]:
    if not zipfile.is_zipfile(p):
        with open(p, "rb") as fh:
            if fh.read(4) == b"PK\x03\x04":  # a zip's first header without its end
                raise ModelFileError(f"{p}: truncated or corrupt model file (its start is a model file's, its "
                                     "end is missing); copy it again or save the model again")
        raise ModelFileError(f"{p}: not a tabsynth model file (expected a zip written by model.save)")
    try:
        with zipfile.ZipFile(p) as zf:
            names = set(zf.namelist())
            if not {"config.json", "weights.pt"} <= names:
                raise ModelFileError(f"{p}: not a tabsynth model file (config.json or weights.pt missing)")
            config = json.loads(zf.read("config.json"))
            raw = zf.read("weights.pt")
    except (zipfile.BadZipFile, zlib.error, EOFError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{p}: truncated or corrupt model file ({exc}); copy it again or save the "
                             "model again") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFileError(f"{p}: not a tabsynth model file (unknown format)")
    if config.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{p}: model file format {config.get('format_version')} is not supported by "
                             f"this tabsynth (reads format {FORMAT_VERSION}); re-fit the model")
    return config, raw


def restore_model(cls: type, config: dict[str, Any], tensors: dict[str, torch.Tensor], device: str | None) -> Any:
    """A fitted ``cls`` from a model file's config and tensors."""
    params: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(config["params"]).items()}
    if device is not None:
        params["device"] = device
    if params.get("dp") is not None:
        params["dp"] = DPConfig.from_dict(params["dp"])
    model = cls(**params)
    model._validate_params()
    model._init_fitted(TableTransformer.from_dict(config["transformer"]), resolve_device(model.device))
    for name, mod in model._modules().items():
        prefix = f"{name}."
        mod.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        mod.to(model.device_)
    model._load_extra_tensors({k[6:]: v.to(model.device_) for k, v in tensors.items() if k.startswith("extra.")})
    model.loss_history_ = pd.DataFrame(config.get("loss_history") or {})
    model.n_rows_ = config.get("n_rows")
    priv = PrivacySpent.from_dict(config.get("privacy") or {})
    model.privacy_ = priv if priv.is_dp else None
    model._sample_calls = 0
    return model


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)
