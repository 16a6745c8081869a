#!/usr/bin/env python
"""Every GPU check in one run (for a session that is lent a GPU; about 5-8 minutes on one H200).

1. ``device="auto"`` picks CUDA; CTGAN and TVAE fit and sample there, in fp32, bf16 and fp16, and a
   seeded fit gives the same table twice on the same device.
2. DP-SGD on CUDA for both models with per-sample hooks and with ghost clipping (same losses), and
   with physical batches (BatchMemoryManager); epsilon spent never above the target.
3. torchrun with the ``nccl`` backend when the machine has 2+ GPUs (skipped with one GPU).
4. ``benchmarks/scaling.py --device cuda`` on a reduced grid (its own result files).

Writes ``benchmarks/results/gpu_check.json`` (or ``$OUT/gpu_check.json`` when ``OUT`` is set).

    .venv/bin/python benchmarks/gpu_check.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
OUT = Path(os.environ.get("OUT", HERE / "results"))


def check(results: dict[str, Any], name: str, fn: Callable[[], Any]) -> None:
    t0 = time.perf_counter()
    try:
        results[name] = {"ok": True, "result": fn()}
    except Exception as exc:  # noqa: BLE001 - a report of every check, whatever fails
        results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                         "traceback": traceback.format_exc()[-2000:]}
    results[name]["seconds"] = round(time.perf_counter() - t0, 2)
    print(name, json.dumps(results[name], default=str)[:400], flush=True)


def main() -> None:
    import torch

    import tabsynth as ts

    results: dict[str, Any] = {"cuda": torch.cuda.is_available(),
                               "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0,
                               "name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    df = ts.datasets.load("adult")

    def plain(cls, precision: str) -> dict[str, Any]:
        model = cls(epochs=3, seed=0, verbose=False, precision=precision).fit(df)
        assert model.device_.type == "cuda", model.device_
        t0 = time.perf_counter()
        out = model.sample(100_000, seed=1)
        torch.cuda.synchronize()
        same = model.sample(1000, seed=2).equals(model.sample(1000, seed=2))
        return {"loss": model.loss_history_.iloc[-1].to_dict(), "sample_100k_s": time.perf_counter() - t0,
                "rows": len(out), "reproducible_sample": same}

    for cls in (ts.CTGAN, ts.TVAE):
        for precision in ("fp32", "bf16", "fp16"):
            check(results, f"{cls.__name__}_{precision}", lambda c=cls, p=precision: plain(c, p))

    def seeded_fit() -> bool:
        a = ts.TVAE(epochs=2, seed=5, verbose=False).fit(df.head(5000)).sample(500, seed=1)
        b = ts.TVAE(epochs=2, seed=5, verbose=False).fit(df.head(5000)).sample(500, seed=1)
        return bool(a.equals(b))

    check(results, "seeded_fit_reproducible", seeded_fit)

    def private(cls, **kw: Any) -> dict[str, Any]:
        model = cls(seed=0, verbose=False, dp=ts.DPConfig(epsilon=1.0, delta=1e-5, **kw)).fit(df)
        spent = model.privacy_spent()
        assert spent.epsilon <= 1.0 + 1e-9
        return {"epsilon": spent.epsilon, "loss": model.loss_history_.iloc[-1].to_dict()}

    for cls in (ts.CTGAN, ts.TVAE):
        check(results, f"DP_{cls.__name__}_hooks", lambda c=cls: private(c))
        check(results, f"DP_{cls.__name__}_ghost", lambda c=cls: private(c, grad_sample_mode="ghost"))
        check(results, f"DP_{cls.__name__}_physical_500", lambda c=cls: private(c, max_physical_batch_size=500))

    if results["gpus"] >= 2:
        def nccl() -> dict[str, Any]:
            data = OUT / "gpu_check_adult"
            data.mkdir(parents=True, exist_ok=True)
            df.to_parquet(data / "adult.parquet", row_group_size=4096)
            model = OUT / "gpu_check_model.tsyn"
            proc = subprocess.run([sys.executable, "-m", "tabsynth", "fit", str(data), "-o", str(model),
                                   "--epsilon", "1", "--epochs", "2", "--nproc", "2", "--device", "cuda", "-q"],
                                  capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, proc.stderr[-2000:]
            return {"stdout": proc.stdout[-500:]}

        check(results, "torchrun_nccl_2gpus", nccl)

    def scaling() -> dict[str, Any]:
        proc = subprocess.run([sys.executable, str(HERE / "scaling.py"), "--device", "cuda", "--rows", "100000",
                               "1000000", "--columns", "15", "150", "--threads", "4", "--no-sample",
                               "--out", str(OUT / "scaling_cuda")], capture_output=True, text=True, timeout=420)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return {"tail": proc.stdout[-1500:]}

    check(results, "scaling_cuda", scaling)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "gpu_check.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {OUT / 'gpu_check.json'}")
    failed = [k for k, v in results.items() if isinstance(v, dict) and not v.get("ok", True)]
    print("FAILED: " + ", ".join(failed) if failed else "all GPU checks passed")


if __name__ == "__main__":
    main()
