"""Timing: `torch.utils.benchmark` with the compared callables alternating round by round (ABBA).

Every callable gets one warm-up call (excluded), then `Timer.blocked_autorange` per round; the rounds
of one callable are merged with `Measurement.merge`, and figures are the median and IQR over all blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils import benchmark


@dataclass
class Stat:
    median: float  # seconds; negative for a difference of two medians
    iqr: float | None  # None for a difference of two medians

    @classmethod
    def of(cls, m: benchmark.Measurement) -> Stat:
        return cls(m.median, m.iqr)

    def fmt(self) -> str:
        if self.iqr is None:
            return fmt_time(self.median) if self.median >= 0 else "-" + fmt_time(-self.median)
        return f"{fmt_time(self.median)} ± {fmt_time(self.iqr / 2)}"


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def interleaved(
    fns: dict[str, Callable[[], object]],
    label: str,
    *,
    rounds: int,
    threads: int,
    min_run_time: float,
    warmup: int = 1,
) -> dict[str, Stat]:
    """Times every callable with blocked_autorange, alternating them round by round; merges the rounds."""
    for fn in fns.values():  # warm-up, excluded from every figure
        for _ in range(warmup):
            fn()
    per_name: dict[str, list[benchmark.Measurement]] = {name: [] for name in fns}
    names = list(fns)
    for round_index in range(rounds):
        order = names if round_index % 2 == 0 else names[::-1]  # ABBA: drift hits both alike
        for name in order:
            timer = benchmark.Timer(
                stmt="fn()", globals={"fn": fns[name]}, label=label, description=name, num_threads=threads
            )
            per_name[name].append(timer.blocked_autorange(min_run_time=min_run_time))
    out = {}
    for name, ms in per_name.items():
        (merged,) = benchmark.Measurement.merge(ms)
        out[name] = Stat.of(merged)
    return out


def oom_guard(fn, *a, **kw):
    """`fn(*a, **kw)`, or the `torch.OutOfMemoryError` it raised (the report then says OOM for that row)."""
    try:
        return fn(*a, **kw)
    except torch.OutOfMemoryError as error:
        torch.cuda.empty_cache()
        return error


def ratio(recon: Stat | str, pi0: Stat | str) -> float | None:
    if isinstance(recon, Stat) and isinstance(pi0, Stat) and recon.median and pi0.median:
        return recon.median / pi0.median
    return None
