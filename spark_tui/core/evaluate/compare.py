"""Compare two or more runs: loss curves, the settings that differ, speed, memory, scores.

    cmp = compare_runs(["run-a", "run-b"])
    cmp.differing        # dotted config keys whose values differ, e.g. ["lora.r"]
    cmp.curves           # {run_id: {"train": [(step, loss)], "eval": [(step, eval_loss)]}}
    cmp.to_markdown()    # one row per run
    cmp.to_csv()

What each column means:

* the **differing keys** are the dotted `RunConfig` settings whose values are
  not the same in every run (``name`` is left out: it always differs and is
  the row's label already);
* ``duration_s``: finished − started from status.json, else the last
  ``elapsed_s`` in metrics.jsonl;
* ``tokens_per_s``: the mean of the per-interval ``tokens_per_s`` of the
  training lines;
* ``peak_memory``: the largest ``gpu_mem_peak_bytes`` / ``gpu_mem_bytes`` on a
  GPU run, else the largest ``rss_bytes`` (resident memory of the training
  process); ``peak_memory_source`` says which;
* ``final_loss`` / ``final_eval_loss``: the last train / eval loss logged;
* the evaluation scores (``eval_loss``, ``perplexity``, ``rougeL``, ``bleu``,
  ``reward_accuracy``...) come from each run's eval.json, when it has one.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spark_tui.core.base.atomic import atomic_write_text
from spark_tui.core.base.errors import SparkError
from spark_tui.core.evaluate.results import headline, load_eval
from spark_tui.core.train.runs import Run, resolve_run

IGNORED_KEYS = ("name",)
SUMMARY_COLUMNS = (
    "state",
    "steps",
    "duration_s",
    "tokens_per_s",
    "peak_memory",
    "final_loss",
    "final_eval_loss",
)
EVAL_COLUMNS = (
    "eval_loss",
    "perplexity",
    "rouge1",
    "rouge2",
    "rougeL",
    "bleu",
    "base_rougeL",
    "reward_accuracy",
    "reward_margin",
)


class CompareError(SparkError):
    """Runs that cannot be compared."""


def flatten(data: dict[str, Any], prefix: str = "", depth: int = 1) -> dict[str, Any]:
    """Nested dict -> {dotted key: value}, descending `depth` levels (RunConfig sections)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and depth > 0:
            out.update(flatten(value, dotted + ".", depth - 1))
        else:
            out[dotted] = value
    return out


def config_values(run: Run) -> dict[str, Any]:
    """The run's settings as {dotted key: value} (tables such as column_map stay one value)."""
    return flatten(run.config().to_dict())


def differing_keys(
    configs: Sequence[dict[str, Any]], ignore: Sequence[str] = IGNORED_KEYS
) -> list[str]:
    """Dotted keys whose values are not identical across all `configs` (in schema order)."""
    keys: list[str] = []
    for cfg in configs:
        for k in cfg:
            if k not in keys:
                keys.append(k)
    out = []
    for k in keys:
        if k in ignore:
            continue
        values = [_canon(c.get(k, _MISSING)) for c in configs]
        if any(v != values[0] for v in values[1:]):
            out.append(k)
    return out


_MISSING = object()


def _canon(value: Any) -> Any:
    if value is _MISSING:
        return "<missing>"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


@dataclass
class RunSummary:
    """What one run contributes to a comparison."""

    id: str
    path: str
    config: dict[str, Any]
    state: str
    steps: int | None
    duration_s: float | None
    tokens_per_s: float | None
    peak_memory_bytes: int | None
    peak_memory_source: str | None
    final_loss: float | None
    final_eval_loss: float | None
    eval: dict[str, Any] = field(default_factory=dict)
    train_curve: list[tuple[int, float]] = field(default_factory=list)
    eval_curve: list[tuple[int, float]] = field(default_factory=list)

    def value(self, column: str) -> Any:
        if column in self.config:
            return self.config[column]
        if column == "peak_memory":
            return self.peak_memory_bytes
        if column in EVAL_COLUMNS:
            return self.eval.get(column)
        return getattr(self, column)


def summarize_run(run: Run | str | Path) -> RunSummary:
    run = run if isinstance(run, Run) else resolve_run(run)
    metrics = run.metrics()
    status = run.status()
    train = [m for m in metrics if m.get("kind", "train") == "train"]
    train_curve = [
        (int(m.get("step", 0)), v) for m in train if (v := _finite(m.get("loss"))) is not None
    ]
    eval_curve = [
        (int(m.get("step", 0)), v)
        for m in metrics
        if (v := _finite(m.get("eval_loss"))) is not None
    ]
    tps = [v for m in train if (v := _finite(m.get("tokens_per_s"))) is not None]
    gpu = [
        int(v)
        for m in metrics
        for k in ("gpu_mem_peak_bytes", "gpu_mem_bytes")
        if (v := _finite(m.get(k))) is not None
    ]
    rss = [int(v) for m in metrics if (v := _finite(m.get("rss_bytes"))) is not None]
    if gpu:
        peak, source = max(gpu), "gpu"
    elif rss:
        peak, source = max(rss), "rss"
    else:
        peak, source = None, None
    started, finished = _finite(status.get("started")), _finite(status.get("finished"))
    if started is not None and finished is not None and finished >= started:
        duration = finished - started
    else:
        elapsed = [v for m in metrics if (v := _finite(m.get("elapsed_s"))) is not None]
        duration = max(elapsed) if elapsed else None
    steps = max((int(m.get("step", 0)) for m in metrics), default=None)
    if steps is None and status.get("step"):
        steps = int(status["step"])
    result = load_eval(run)
    return RunSummary(
        id=run.id,
        path=str(run.path),
        config=config_values(run),
        state=str(status.get("state", "new")),
        steps=steps,
        duration_s=duration,
        tokens_per_s=sum(tps) / len(tps) if tps else None,
        peak_memory_bytes=peak,
        peak_memory_source=source,
        final_loss=train_curve[-1][1] if train_curve else None,
        final_eval_loss=eval_curve[-1][1] if eval_curve else None,
        eval={k: v for k, v in headline(result).items() if v is not None} if result else {},
        train_curve=train_curve,
        eval_curve=eval_curve,
    )


@dataclass
class Comparison:
    runs: list[RunSummary]
    differing: list[str]

    @property
    def curves(self) -> dict[str, dict[str, list[tuple[int, float]]]]:
        return {r.id: {"train": r.train_curve, "eval": r.eval_curve} for r in self.runs}

    @property
    def eval_columns(self) -> list[str]:
        return [c for c in EVAL_COLUMNS if any(c in r.eval for r in self.runs)]

    @property
    def columns(self) -> list[str]:
        return ["run", *self.differing, *SUMMARY_COLUMNS, *self.eval_columns]

    def rows(self) -> list[list[Any]]:
        """Raw values, one row per run, in `columns` order."""
        out = []
        for r in self.runs:
            out.append([r.id, *(r.value(c) for c in self.columns[1:])])
        return out

    def metric_vs(self, key: str, metric: str) -> list[tuple[Any, float | None]]:
        """(value of setting `key`, `metric`) per run: the data of a metric-vs-parameter plot."""
        return [(r.config.get(key), _finite(r.value(metric))) for r in self.runs]

    def to_markdown(self) -> str:
        cols = self.columns
        lines = [
            "| " + " | ".join(cols) + " |",
            "| " + " | ".join("---" if c in ("run", "state") else "---:" for c in cols) + " |",
        ]
        for row in self.rows():
            cells = [_fmt(c, v).replace("|", "\\|") for c, v in zip(cols, row, strict=True)]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.columns)
        for row in self.rows():
            w.writerow(["" if v is None else _csv_value(v) for v in row])
        return buf.getvalue()

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": [r.id for r in self.runs],
            "differing": self.differing,
            "columns": self.columns,
            "rows": self.rows(),
            "curves": self.curves,
        }

    def save(self, path: str | Path, fmt: str | None = None) -> Path:
        """Write Markdown (.md) or CSV (.csv); `fmt` overrides the suffix."""
        path = Path(path)
        fmt = fmt or ("csv" if path.suffix.lower() == ".csv" else "markdown")
        atomic_write_text(path, self.to_csv() if fmt == "csv" else self.to_markdown())
        return path


def _csv_value(v: Any) -> Any:
    if isinstance(v, (list, dict)):
        return json.dumps(v, sort_keys=True)
    return v


def _fmt(column: str, v: Any) -> str:
    if v is None:
        return "–"
    if column == "peak_memory":
        return f"{v / 1024**3:.2f} GB"
    if column == "duration_s":
        v = float(v)
        return f"{v:.0f} s" if v < 120 else f"{v / 60:.1f} min"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if column in ("rouge1", "rouge2", "rougeL", "base_rougeL", "reward_accuracy"):
            return f"{v:.3f}"
        if abs(v) >= 1000 or v == int(v):
            return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:g}"
        return f"{v:.4g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v, sort_keys=True)
    return str(v)


def compare_runs(runs: Sequence[Run | str | Path]) -> Comparison:
    """Compare two or more runs (Run handles, ids or folders)."""
    if len(runs) < 2:
        raise CompareError("pick at least two runs to compare")
    summaries = [summarize_run(r) for r in runs]
    ids = [s.id for s in summaries]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes and len({s.path for s in summaries}) < len(summaries):
        raise CompareError(f"run {sorted(dupes)[0]} was given twice; pick different runs")
    return Comparison(runs=summaries, differing=differing_keys([s.config for s in summaries]))
