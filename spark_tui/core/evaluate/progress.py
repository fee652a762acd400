"""Progress and cancel callbacks of the Evaluate room's long jobs (evaluations, sweeps).

`progress(fraction, message)` is called along the way and `cancel()` is polled
between units of work; `Steps` maps units onto progress fractions and raises
`EvalCancelled` when the cancel check says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from spark_tui.core.base.progress import eta_seconds, progress_line
from spark_tui.core.evaluate.errors import EvalCancelled

Progress = Callable[[float, str], None]
CancelCheck = Callable[[], bool]


class Steps:
    """Maps units of work onto progress fractions and polls the cancel check.

    A phase (one message, e.g. "base: loss on held-out rows") that says how many
    units it has (`of`) is reported with its own count and time left:
    "base: loss on held-out rows · 16 / 28 rows · 57 % · 0:09 left".
    """

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
        self._phase = ""
        self._phase_done = 0
        self._phase_t0 = time.monotonic()

    def check(self) -> None:
        if self.cancel is not None and self.cancel():
            raise EvalCancelled()

    def begin(self, message: str) -> None:
        """Start a phase's clock (before its first unit, so the first ETA counts it)."""
        if message != self._phase:
            self._phase, self._phase_done, self._phase_t0 = message, 0, time.monotonic()

    def advance(self, n: int, message: str, of: int | None = None, unit: str = "rows") -> None:
        self.done += n
        self.begin(message)
        self._phase_done += n
        if of:
            eta = eta_seconds(self._phase_done, of, time.monotonic() - self._phase_t0)
            message = progress_line(message, self._phase_done, of, unit, eta)
        self.report(message)

    def report(self, message: str) -> None:
        self.check()
        if self.progress is not None:
            frac = self.start + (self.end - self.start) * min(1.0, self.done / self.total)
            self.progress(frac, message)
