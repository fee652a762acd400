"""Progress and cancel callbacks of the Evaluate room's long jobs (evaluations, sweeps).

`progress(fraction, message)` is called along the way and `cancel()` is polled
between units of work; `Steps` maps units onto progress fractions and raises
`EvalCancelled` when the cancel check says so.
"""

from __future__ import annotations

from collections.abc import Callable

from spark_tui.core.evaluate.errors import EvalCancelled

Progress = Callable[[float, str], None]
CancelCheck = Callable[[], bool]


class Steps:
    """Maps units of work onto progress fractions and polls the cancel check."""

    def __init__(
        self,
        total: int,
        progress: Progress | None,
        cancel: CancelCheck | None,
        start: float = 0.0,
        end: float = 1.0,
    ) -> None:
        self.total = max(1, total)
        self.done = 0
        self.progress = progress
        self.cancel = cancel
        self.start = start
        self.end = end

    def check(self) -> None:
        if self.cancel is not None and self.cancel():
            raise EvalCancelled()

    def advance(self, n: int, message: str) -> None:
        self.done += n
        self.report(message)

    def report(self, message: str) -> None:
        self.check()
        if self.progress is not None:
            frac = self.start + (self.end - self.start) * min(1.0, self.done / self.total)
            self.progress(frac, message)
