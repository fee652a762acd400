"""A status line for a long job that reports in phases: the newest message, and time moving.

A phase done in one big batch (the held-out loss of a small set is one forward
pass) sends nothing until it ends; the line then adds how long the phase has run,
once a second, so a slow machine never looks stuck ("… · 0:12 so far").
"""

from __future__ import annotations

import time
from typing import Any

from textual.widgets import Static

from spark_tui.core.base.progress import fmt_duration

QUIET_S = 2.0  # before this, a phase's own message is enough


class PhaseStatus(Static):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.phase, self.message, self._t0 = "", "", 0.0
        self._timer: Any = None

    def show(self, message: str) -> None:
        """A progress message "phase · counts · time left"; a new phase restarts the clock."""
        phase = message.split(" · ", 1)[0]
        if phase != self.phase:
            self.phase, self._t0 = phase, time.monotonic()
        self.message = message
        self._tick()
        if self._timer is None:
            self._timer = self.set_interval(1.0, self._tick)

    def end(self, text: str = "") -> None:
        """The job is over: stop the clock and show `text`."""
        self.message, self.phase = "", ""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.update(text)

    def _tick(self) -> None:
        if not self.message:
            return
        text = self.message
        since = time.monotonic() - self._t0
        if "left" not in text and since >= QUIET_S:
            text += f" · {fmt_duration(since)} so far"
        self.update(text)
