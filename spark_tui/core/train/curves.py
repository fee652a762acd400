"""A run's training curves, kept incrementally as metrics lines arrive.

The Train screen redraws while a run goes on for hours; rebuilding every series
from the whole metrics list on each poll would cost more the longer the run.
`Curves.extend` files each new line into its series once (the smoothed loss
included), so an update costs what it adds, and a chart reads a bounded
down-sample of each series (`downsample`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

# Series kept: metrics.jsonl key → series name.  Eval lines carry `eval_loss`.
KEYS = ("loss", "eval_loss", "learning_rate", "grad_norm", "rewards/margins", "rewards/accuracies")
SMOOTHING = 0.8  # TensorBoard's default smoothing weight


class Series:
    """One curve: parallel step and value lists, only ever appended to."""

    __slots__ = ("xs", "ys")

    def __init__(self) -> None:
        self.xs: list[float] = []
        self.ys: list[float] = []

    def __len__(self) -> int:
        return len(self.xs)

    def append(self, x: float, y: float) -> None:
        self.xs.append(x)
        self.ys.append(y)


class Curves:
    """Every metrics line of a run, plus its curves and the last training line."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.series: dict[str, Series] = {k: Series() for k in (*KEYS, "smoothed")}
        self.last_train: dict[str, Any] = {}
        self._ema: float | None = None

    def clear(self) -> None:
        self.__init__()

    def extend(self, metrics: Iterable[dict[str, Any]], reset: bool = False) -> None:
        """Add new metrics lines (`reset`: the file was rewritten; start over)."""
        if reset:
            self.clear()
        for m in metrics:
            self._add(m)

    def _add(self, m: dict[str, Any]) -> None:
        self.rows.append(m)
        step = m.get("step")
        if not isinstance(step, (int, float)):
            return
        is_eval = m.get("kind") == "eval"
        for key in KEYS:
            value = m.get(key)
            if not isinstance(value, (int, float)) or (key == "loss" and is_eval):
                continue
            self.series[key].append(step, float(value))
        loss = m.get("loss")
        if isinstance(loss, (int, float)) and not is_eval:
            self.last_train = m
            y = float(loss)
            self._ema = y if self._ema is None else SMOOTHING * self._ema + (1 - SMOOTHING) * y
            self.series["smoothed"].append(step, self._ema)

    def points(self, key: str) -> tuple[list[float], list[float]]:
        s = self.series[key]
        return s.xs, s.ys


def downsample(
    xs: Sequence[float], ys: Sequence[float], max_points: int
) -> tuple[list[float], list[float]]:
    """At most `max_points` evenly spaced points, the last one always kept.

    Indexes the sequences without copying them: the cost follows `max_points`,
    not the length of the run.
    """
    n = len(xs)
    if n <= max_points or max_points < 2:
        return list(xs), list(ys)
    step = (n - 1) / (max_points - 1)
    idx = sorted({round(i * step) for i in range(max_points)})
    return [xs[i] for i in idx], [ys[i] for i in idx]
