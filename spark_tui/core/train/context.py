"""What the orchestrator and the trainer callbacks share while one run trains."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from spark_tui.core.train.metrics import BatchTokenCounter
from spark_tui.core.train.ranks import Rank


class Divergence(NamedTuple):
    """Where the NaN/inf guard stopped a run: what went bad, at which step."""

    step: int
    key: str  # "loss", "eval_loss" or "grad_norm"
    value: Any  # the bad value as logged (NaN, inf or an exploded loss)
    first_loss: float | None


@dataclass
class TrainContext:
    """Set by the orchestrator (`orchestrate._train`), read (and `diverged` set) by the callbacks."""

    precision: str = ""  # "fp32", "bf16" or "fp16" (fp16: an inf grad norm is a skipped step)
    elapsed_before: float = 0.0  # seconds trained by earlier sessions of this run (resume)
    first_loss: float | None = None  # the run's first logged loss (the divergence guard's base)
    token_counter: BatchTokenCounter | None = None  # where the trainer does not count tokens
    gpu_mem: Callable[[], dict[str, int]] | None = None  # GPU memory reading (GPU runs only)
    diverged: Divergence | None = None  # set by the NaN/inf guard; the run then fails
    # The last step whose logged training loss passed the NaN/inf guard: checkpoints up
    # to it are verified (kept by rotation); later ones go if the run diverges.
    last_finite_step: int = 0
    rank: Rank = field(default_factory=Rank)  # which process of a distributed run; 0 of 1
    disk_need: Any = None  # the disk preflight's estimate (`disk.DiskNeed`), for the advice
