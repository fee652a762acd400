"""metrics.jsonl: its keys, the readings one line carries, and its truncation on resume.

`callbacks.MetricsCallback` writes one line per logging step from these
readings; the followers (TUI charts, `spark-tui attach`) read the file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from spark_tui.core.base.atomic import atomic_write_text
from spark_tui.core.train.runs import Run, read_metrics

# Keys of one metrics.jsonl line.  Absent keys mean "not measured at this step".
METRIC_KEYS = {
    "kind": '"train" or "eval"',
    "step": "optimizer step (global, continues across resumes)",
    "epoch": "fractional epoch",
    "time": "unix time of the line",
    "elapsed_s": "seconds of training in this run (all sessions)",
    "loss": "training loss averaged over the logging interval",
    "eval_loss": "validation loss (eval lines)",
    "learning_rate": "learning rate at this step",
    "grad_norm": "gradient norm before clipping",
    "tokens_per_s": "non-padding tokens per second over the logging interval",
    "samples_per_s": "rows per second over the logging interval",
    "tokens_seen": "non-padding tokens trained on so far (this session)",
    "rss_bytes": "resident memory of the training process",
    "sys_mem_used_bytes": "system memory in use (total - available)",
    "sys_mem_total_bytes": "system memory size",
    "gpu_mem_bytes": "GPU memory allocated by torch (GPU runs only)",
    "gpu_mem_peak_bytes": "peak GPU memory allocated by torch (GPU runs only)",
    "rewards/chosen": "preference objectives: mean reward of the chosen answers",
    "rewards/rejected": "preference objectives: mean reward of the rejected answers",
    "rewards/margins": "preference objectives: chosen - rejected reward",
    "rewards/accuracies": "preference objectives: fraction of pairs ranked right",
    "nonfinite": '{key: "nan" | "inf" | "-inf"} for values written as null (NaN guard)',
}
PREFERENCE_KEYS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")
# Trainer bookkeeping that is not a per-step metric.
SKIP_LOG_KEYS = {
    "total_flos", "train_runtime", "train_samples_per_second", "train_steps_per_second",
    "train_loss", "train_tokens_per_second", "num_input_tokens_seen", "eval_runtime",
    "eval_samples_per_second", "eval_steps_per_second", "epoch", "step",
}  # fmt: skip


def finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def nonfinite(value: Any) -> str:
    """JSON has no NaN/Infinity: write them as strings the followers can recognise."""
    v = float(value)
    if math.isnan(v):
        return "nan"
    return "inf" if v > 0 else "-inf"


def read_system_memory() -> tuple[int | None, int | None]:
    try:
        from spark_tui.core.model.sysmem import read_meminfo

        mi = read_meminfo()
        total = mi.get("MemTotal", 0)
        return max(0, total - mi.get("MemAvailable", 0)), total
    except Exception:
        return None, None


def read_rss() -> int | None:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:
        return None


def gpu_mem_reader(hw: Any) -> Callable[[], dict[str, int]] | None:
    if hw.device != "cuda":
        return None
    import torch

    def read() -> dict[str, int]:
        return {
            "gpu_mem_bytes": int(torch.cuda.memory_allocated()),
            "gpu_mem_peak_bytes": int(torch.cuda.max_memory_allocated()),
        }

    return read


class BatchTokenCounter:
    """Wraps a data collator to count the non-padding tokens of every batch it builds.

    Used where the trainer does not log `num_tokens` itself (TRL's CPO/ORPO).
    (Not `core.data.tokens.RowTokenCounter`, which measures the rows' lengths
    before training, for the data report and truncation.)
    """

    def __init__(self, collator: Any) -> None:
        self.collator = collator
        self.tokens = 0

    def __call__(self, features: Any) -> Any:
        batch = self.collator(features)
        try:
            if "chosen_attention_mask" in batch and "rejected_attention_mask" in batch:
                n = batch["chosen_attention_mask"].sum() + batch["rejected_attention_mask"].sum()
            elif "attention_mask" in batch:
                n = batch["attention_mask"].sum()
            elif "input_ids" in batch:
                n = batch["input_ids"].numel()
            else:
                n = 0
            self.tokens += int(n)
        except Exception:  # pragma: no cover - counting must never break training
            pass
        return batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self.collator, name)


def truncate_metrics(run: Run, last_step: int) -> int:
    """Drop metrics lines after `last_step` (resume), atomically.  Returns lines kept."""
    lines: list[str] = []
    try:
        text = run.metrics_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            step = int(rec.get("step") or 0)
        except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
            continue  # a torn last line of a killed process, or not a metrics record
        if step <= last_step:
            lines.append(line)
    atomic_write_text(run.metrics_path, "".join(x + "\n" for x in lines))
    return len(lines)


def elapsed_at(run: Run, step: int) -> float:
    """Seconds of training the metrics file records up to `step` (where a resume continues)."""
    rows = [m for m in read_metrics(run.metrics_path) if int(m.get("step", 0)) <= step]
    return float(rows[-1].get("elapsed_s", 0.0)) if rows else 0.0
