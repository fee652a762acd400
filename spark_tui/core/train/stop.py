"""Stopping a run gracefully: a signal or the stop file -> finish the step, checkpoint, save.

`process.stop_training` writes the stop file and sends SIGTERM; the trainer
callbacks and the orchestrator ask `StopControl` whether a stop arrived.
"""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path
from typing import Any

from spark_tui.core.base import names
from spark_tui.core.train.runs import Run


class StopRequested(BaseException):
    """Raised by the signal handler when a stop arrives before the training loop runs.

    A BaseException (like KeyboardInterrupt) so that libraries' `except Exception`
    blocks do not swallow it.
    """


class StopControl:
    """A stop request from a signal or from the stop file in the run folder."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.requested = False
        self.training = False  # True once the trainer loop runs: signals then stop gracefully
        self.reason = ""

    @property
    def stop_file(self) -> Path:
        return self.run.path / names.STOP_FILE

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.stop_file.unlink()

    def check(self) -> bool:
        if not self.requested and self.stop_file.exists():
            self.requested = True
            self.reason = "stop requested"
        return self.requested

    def handle_signal(self, signum: int, _frame: Any) -> None:
        self.requested = True
        self.reason = f"stop requested ({signal.Signals(signum).name})"
        if not self.training:
            raise StopRequested(self.reason)
