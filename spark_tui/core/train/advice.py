"""What a failed run tells the user: out of memory and divergence, each with what to change.

The orchestrator classifies the exception (`is_oom`) and the NaN/inf guard in
the callbacks spots a diverged loss (`exploded`); the message and the
suggestions land in status.json, where the Train screen and the CLI show them.
"""

from __future__ import annotations

import logging
from typing import Any

from spark_tui.config import RunConfig
from spark_tui.core.train.metrics import finite

log = logging.getLogger("spark_tui.training")

EXPLODE_FACTOR = 10.0
EXPLODE_MIN = 20.0


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    if name in ("OutOfMemoryError", "OutOfMemory"):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text
        or "can't allocate memory" in text
        or "cannot allocate memory" in text
    )


def oom_advice(cfg: RunConfig | None) -> tuple[str, list[str]]:
    """(short message, suggestions) for an out-of-memory failure, using the Memory step's estimator."""
    msg = "out of memory"
    suggestions: list[str] = []
    if cfg is not None:
        try:
            from spark_tui.core.memory.breakdown import fmt_gb
            from spark_tui.core.memory.estimator import estimate_config
            from spark_tui.core.memory.fit import verdict
            from spark_tui.core.model import hardware

            probe = hardware.probe(with_disk=False, with_processes=False)
            est = estimate_config(cfg, hardware=probe)
            v = verdict(est, probe)
            msg = (
                f"out of memory: the estimated peak is {fmt_gb(est.total)} and "
                f"{fmt_gb(v.budget)} was available ({v.budget_source})"
            )
            suggestions = [
                f"{sg.title} ({', '.join(f'{k}={val}' for k, val in sg.changes.items())})"
                for sg in v.suggestions[:4]
            ]
            if cfg.train.gradient_checkpointing == "auto" and not est.settings.gradient_checkpointing:
                # "auto" left it off because the estimate fitted: here it did not.
                suggestions.insert(
                    0, "set train.gradient_checkpointing = 'on' (auto had turned it off)"
                )
        except Exception:  # the estimator is optional here; never hide the real failure
            log.debug("memory estimate unavailable", exc_info=True)
    if len(suggestions) < 2:  # nothing (or only the checkpointing line) from the estimate
        gc_said = bool(suggestions)
        suggestions += [
            "lower train.micro_batch_size (raise train.grad_accum to keep the effective batch)",
            "lower data.max_length",
            *([] if gc_said else ["set train.gradient_checkpointing = 'on'"]),
            "use QLoRA (method.adapter = 'qlora') or a smaller model",
        ]
    return msg, suggestions


def exploded(loss: float, first: float) -> bool:
    """A finite loss that has clearly diverged: 10x its first value and above 20.

    Cross-entropy of a uniform guess over a 50k vocabulary is ~10.8, so a
    fine-tuning loss above 20 that is also 10x where it started is never progress.
    """
    return loss > EXPLODE_MIN and loss > EXPLODE_FACTOR * max(first, 1e-6)


def divergence_advice(
    cfg: RunConfig, step: int, key: str, value: Any, first: float | None = None
) -> tuple[str, list[str]]:
    lr = cfg.train.learning_rate
    if finite(value):
        start = f" (it started at {first:.4g})" if first is not None else ""
        msg = (
            f"{key} exploded to {float(value):.4g} at step {step}{start}: "
            "training diverged and was stopped"
        )
    else:
        msg = f"{key} became {value} at step {step}: training diverged and was stopped"
    advice = [
        f"lower train.learning_rate (now {lr:g}; try {lr / 10:g})",
        "check the data for empty, huge or garbled rows (the Dataset step's lint)",
        "keep or raise train.warmup_ratio so the first steps are gentle",
    ]
    if cfg.train.precision == "fp16":
        advice.append("use bf16 or fp32 instead of fp16")
    return msg, advice
