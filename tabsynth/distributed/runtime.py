"""The torch.distributed process group a fit runs in: one process (the default) or many under torchrun.

Under ``torchrun`` every process reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` and the rendezvous
address from its environment; :func:`current` joins the group once (``nccl`` when each rank has a
GPU, else ``gloo``) and returns who we are. Outside torchrun it returns a single-process runtime
whose collectives are no-ops, so model code calls them unconditionally.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from tabsynth.errors import ConfigError, TabsynthError

T = TypeVar("T")


@dataclass(frozen=True)
class Runtime:
    """This process's place in the group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # --- collectives (no-ops in one process) ---------------------------------------------------
    def all_reduce_sum(self, x: np.ndarray | float | list[float]) -> np.ndarray:
        """Element-wise sum over ranks, exact for counts (float64 on the wire)."""
        arr = np.asarray(x, dtype=np.float64)
        if not self.distributed:
            return arr.copy()
        t = torch.from_numpy(np.ascontiguousarray(arr)).reshape(-1).to(self._wire_device())
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
        return t.cpu().numpy().reshape(arr.shape)

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """``obj`` as rank ``src`` holds it (internal, trusted peers of one job; never user files)."""
        if not self.distributed:
            return obj
        box = [obj if self.rank == src else None]
        torch.distributed.broadcast_object_list(box, src=src)
        return box[0]

    def all_gather_object(self, obj: Any) -> list[Any]:
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def broadcast_module(self, module: nn.Module) -> None:
        """Give every rank rank 0's parameters and buffers (same start, whatever each rank's seed)."""
        if not self.distributed:
            return
        with torch.no_grad():
            for t in [*module.parameters(), *module.buffers()]:
                torch.distributed.broadcast(t.data, src=0)

    def average_gradients(self, params: list[nn.Parameter]) -> None:
        """Data-parallel step: mean of every rank's gradient, one flat all-reduce."""
        if not self.distributed:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
        flat /= self.world_size
        pos = 0
        for g in grads:
            g.copy_(flat[pos:pos + g.numel()].view_as(g))
            pos += g.numel()

    def average_buffers(self, module: nn.Module) -> None:
        """Mean of floating buffers (BatchNorm running statistics), rank 0's counters, so every rank
        saves the same model."""
        if not self.distributed:
            return
        with torch.no_grad():
            for b in module.buffers():
                if b.is_floating_point():
                    torch.distributed.all_reduce(b, op=torch.distributed.ReduceOp.SUM)
                    b /= self.world_size
                else:
                    torch.distributed.broadcast(b, src=0)

    def agree(self, fn: Callable[[], T]) -> T:
        """``fn()`` on every rank; when a user error (a :class:`TabsynthError`) is raised on any rank,
        every rank raises it, so no rank is left waiting in a collective for one that gave up."""
        if not self.distributed:
            return fn()
        failure: tuple[str, str] | None = None
        try:
            result = fn()
        except TabsynthError as exc:
            failure = (type(exc).__name__, str(exc))
        failures = self.all_gather_object(failure)
        for rank, fail in enumerate(failures):
            if fail is not None:
                import tabsynth.errors as errors

                cls = getattr(errors, fail[0], TabsynthError)
                raise cls(fail[1] if rank == self.rank else f"process {rank}: {fail[1]}")
        return result

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def _wire_device(self) -> torch.device:
        if self.backend == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r} is not an integer (set by torchrun)") from None


def current(backend: str | None = None) -> Runtime:
    """This process's runtime; joins torchrun's process group on first use."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return Runtime(torch.distributed.get_rank(), torch.distributed.get_world_size(),
                       _env_int("LOCAL_RANK", 0), torch.distributed.get_backend())
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return Runtime()
    if not torch.distributed.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed support")
    local_rank = _env_int("LOCAL_RANK", 0)
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() and torch.distributed.is_nccl_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    torch.distributed.init_process_group(backend=backend)
    return Runtime(torch.distributed.get_rank(), torch.distributed.get_world_size(), local_rank, backend)


def rank_device(device: torch.device, runtime: Runtime) -> torch.device:
    """Each rank on its own GPU (``LOCAL_RANK``); CPU stays CPU."""
    if device.type == "cuda" and runtime.distributed:
        return torch.device("cuda", runtime.local_rank)
    return device
