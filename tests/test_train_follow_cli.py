"""`spark-tui train` following a run in a terminal: what "preparing" is doing, then steps."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace

from rich.console import Console

from spark_tui.commands.train import _follow_rich


class _Follower:
    def __init__(self, updates):
        self.updates, self.metrics = updates, []

    def __iter__(self):
        for status, state, metrics in self.updates:
            self.metrics.extend(metrics)
            yield SimpleNamespace(status=status, state=state, metrics=metrics)


def test_each_preparing_phase_is_named_once_then_the_steps_follow():
    dl = {"state": "preparing", "phase": "downloading model", "phase_progress": 0.2,
          "phase_detail": "download · 3.2 / 16.0 GB · 20 % · 4:10 left"}  # fmt: skip
    updates = [
        (dl, "preparing", []),
        ({**dl, "phase_progress": 0.6}, "preparing", []),
        ({"state": "preparing", "phase": "loading model"}, "preparing", []),
        ({"state": "training", "phase": "training", "step": 3, "total_steps": 30}, "training",
         [{"kind": "train", "step": 3, "loss": 2.5, "tokens_per_s": 100.0}]),
        ({"state": "finished", "step": 30, "total_steps": 30}, "finished", []),
    ]  # fmt: skip
    out = io.StringIO()
    final = _follow_rich(_Follower(updates), Console(file=out, force_terminal=True, width=120))
    text = out.getvalue()
    assert final["state"] == "finished"
    loading = [m.start() for m in re.finditer(r"(?<!down)loading model", text)]
    assert text.count("downloading model") == 1 and len(loading) == 1
    assert text.index("downloading model") < loading[0]
