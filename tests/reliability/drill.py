"""What the drills share: a short run of the default model and patient waiting.

Imported by the drills (not a conftest: the names stay explicit).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spark_tui.config import RunConfig


def short_run(tmp_path: Path, steps: int = 10, save_steps: int = 2, rows: int = 32) -> RunConfig:
    """A LoRA SFT run of the bundled default model: a step is a fraction of a second here."""
    from tests.core.train.test_orchestrate import tiny_cfg

    cfg = tiny_cfg(tmp_path, steps=steps, rows=rows)
    cfg.train.save_steps = save_steps
    cfg.train.logging_steps = 1
    cfg.train.save_total_limit = steps  # every checkpoint stays: the drills pick among them
    return cfg


def wait_for(cond: Callable[[], Any], timeout: float, what: str, poll: float = 0.1) -> Any:
    """The first truthy `cond()`, or an AssertionError naming `what` after `timeout` seconds."""
    end = time.time() + timeout
    while time.time() < end:
        value = cond()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def train_steps(run: Any) -> list[int]:
    """The steps of metrics.jsonl's training lines, in file order."""
    return [m["step"] for m in run.metrics() if m.get("kind") == "train"]
