"""One progress line for every long step: what it does, how far (in its own unit), time left.

The core reports progress as ``(stage, done, total)`` (data preparation, merge,
export, quantize, verification, Ollama upload) or as fractions with a message
(evaluation).  `StageProgress` turns those events into the line the screens show,
e.g. ``merge · 120 / 272 tensors · 44 % · 0:31 left``.  The time left comes from
the rate since the stage began (a stage that just started shows none rather than
a wild guess).
"""

from __future__ import annotations

import time
from collections.abc import Callable

# The unit of each stage's done/total, as the core's producers count them.
STAGE_UNITS: dict[str, str] = {
    "reading": "bytes",  # read_json / source: bytes of the file
    "reading rows": "rows",  # CSV/Parquet/Arrow readers and `datasets` folders
    "checking": "rows",
    "tokenizing": "rows",
    "generating": "rows",
    "merge": "tensors",
    "merge in memory": "steps",  # PEFT's merge_and_unload: load, merge, save
    "convert": "steps",
    "ollama-test": "steps",
    "write": "tensors",
    "verify tensors": "tensors",
    "verify": "checks",
    "quantize": "bytes",
    "upload": "bytes",
    "download": "bytes",  # core/model/download: bytes written into the HF cache
}
# Before this much time (or this share of the work) the rate says too little.
ETA_MIN_S = 1.0
ETA_MIN_FRACTION = 0.02


def fmt_duration(seconds: float | None) -> str:
    """0:42, 12:05 or 1:02:03; a dash for nothing known."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "–"
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def fmt_amount(done: float, total: float | None, unit: str) -> str:
    """`12.5 / 80.0 MB`, `120 / 272 tensors` or `1,200 rows` (no total known)."""
    if unit == "bytes":
        scale, name = (1024**3, "GB") if (total or done) >= 1024**3 else (1024**2, "MB")
        d = done / scale
        return f"{d:.1f} / {total / scale:.1f} {name}" if total else f"{d:.1f} {name}"
    d = f"{int(done):,}"
    return f"{d} / {int(total):,} {unit}".rstrip() if total else f"{d} {unit}".rstrip()


def eta_seconds(done: float, total: float | None, elapsed: float) -> float | None:
    """Time left at the rate so far; None until the rate means something."""
    if not total or done <= 0 or done >= total or elapsed < ETA_MIN_S:
        return None
    if done / total < ETA_MIN_FRACTION:
        return None
    return elapsed * (total - done) / done


def progress_line(
    stage: str, done: float, total: float | None, unit: str = "", eta_s: float | None = None
) -> str:
    parts = [stage]
    if (total or done) and (unit or (total or 0) > 1):
        parts.append(fmt_amount(done, total, unit))
    if total:
        parts.append(f"{min(100, int(100 * done / total))} %")
    if eta_s is not None:
        parts.append(f"{fmt_duration(eta_s)} left")
    return " · ".join(parts)


class StageProgress:
    """Follows ``(stage, done, total)`` events; `line()` is what to show for the newest.

    A new stage name (or a total that changes) restarts the clock for the time left.
    """

    def __init__(
        self, units: dict[str, str] | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.units = STAGE_UNITS if units is None else units
        self.clock = clock
        self.stage = ""
        self.done: float = 0
        self.total: float | None = None
        self._key: tuple[str, float | None] = ("", None)
        self._start = clock()
        self._start_done: float = 0

    def update(self, stage: str, done: float | None, total: float | None) -> str:
        done = float(done or 0)
        total = float(total) if total else None
        key = (stage, total)
        if key != self._key:
            self._key, self._start, self._start_done = key, self.clock(), done
        self.stage, self.done, self.total = stage, done, total
        return self.line()

    def eta(self) -> float | None:
        if self.total is None:
            return None
        moved = self.done - self._start_done
        left = self.total - self._start_done
        return eta_seconds(moved, left, self.clock() - self._start)

    def line(self) -> str:
        label = self.stage.split(": ", 1)[-1]  # "export: write" → unit of "write"
        unit = self.units.get(label.strip(), "")
        return progress_line(self.stage, self.done, self.total, unit, self.eta())
