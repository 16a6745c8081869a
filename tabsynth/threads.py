"""How many CPU threads torch uses for a command: ``--threads N``, or fewer when the machine is busy."""

from __future__ import annotations

import argparse
import os

__all__ = ["add_threads_arg", "auto_threads", "use_threads"]


def add_threads_arg(p: argparse.ArgumentParser) -> None:
    from tabsynth.argtypes import positive_int

    p.add_argument("--threads", type=positive_int,
                   help="CPU threads for training and sampling (default: the cores not already busy, judged by "
                        "the 1-minute load average, at least 1)")


def auto_threads() -> int:
    """The cores the 1-minute load average leaves idle (at least 1): on a loaded machine, extra threads
    only wait on each other."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        load = os.getloadavg()[0]
    except OSError:
        return cores
    return max(1, min(cores, cores - int(load + 0.5)))


def use_threads(threads: int | None) -> int:
    """Set torch's intra-op threads to ``threads`` (or :func:`auto_threads`); returns the number set."""
    import torch

    n = auto_threads() if threads is None else threads
    torch.set_num_threads(n)
    return n
