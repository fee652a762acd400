"""Sweeps: one setting, several values, one run per value, trained one after another.

    sweep = create_sweep(base_cfg, "lora.r", [4, 8, 16], max_steps=50)
    run_sweep(sweep, progress=lambda f, m: ...)     # blocks; trains each run in turn
    sweep.compare().to_markdown()                   # the differing key is lora.r
    sweep.points("final_eval_loss")                 # [(4, 1.92), (8, 1.85), (16, 1.83)]

Each value becomes an ordinary run folder made from the base `RunConfig` with
`RunConfig.with_value(param, value)` — so every run can be opened, followed,
evaluated, exported or resumed on its own.  The sweep itself is a small JSON
manifest in ``<home>/sweeps/<sweep-id>.json`` listing the parameter, the
values and the run ids (with their paths), so the compare view can open them.

Training goes through `spark_tui.core.train.process` (a detached training process
per run, waited for in turn) — the same path as a single run.  ``mode="inprocess"``
calls the training engine in this process instead (tests, benchmarks).  A
finished run is skipped when a sweep is run again, so an interrupted sweep
continues where it stopped.  `cancel()` stops the current run gracefully (it
saves a checkpoint) and leaves the rest untrained.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spark_tui.config import ConfigError, RunConfig, known_keys
from spark_tui.core.base import paths
from spark_tui.core.base.atomic import atomic_write_json, read_json
from spark_tui.core.base.errors import SparkError
from spark_tui.core.base.names import FINAL_STATES, STOP_FILE
from spark_tui.core.evaluate.progress import CancelCheck, Progress
from spark_tui.core.train.runs import Run, create_run

# The course's sweeps (offered first in the UI); any known key may be swept.
SUGGESTED_PARAMS = (
    "lora.r",
    "train.neftune_alpha",
    "train.learning_rate",
    "method.objective",
    "method.adapter",
    "method.use_dora",
    "lora.alpha",
    "train.epochs",
)
SWEEP_VERSION = 1


class SweepError(SparkError):
    """A sweep that cannot be planned or run; the message says what to change."""


def sweeps_dir() -> Path:
    return paths.home() / "sweeps"


def parse_values(base: RunConfig, param: str, values: str | Sequence[Any]) -> list[Any]:
    """Values for `param` from "4,8,16" (typed like the current value) or a list."""
    try:
        current = base.get(param)
    except ConfigError as exc:
        raise SweepError(str(exc)) from exc
    if isinstance(current, (dict, list)):
        raise SweepError(f"'{param}' is a table or list; sweep a single setting instead")
    items = [v.strip() for v in values.split(",")] if isinstance(values, str) else list(values)
    items = [v for v in items if not (isinstance(v, str) and v == "")]
    if not items:
        raise SweepError(f"no values given for {param}; e.g. --values 4,8,16")
    out = [_typed(param, current, v) for v in items]
    seen: list[Any] = []
    for v in out:
        if v in seen:
            raise SweepError(f"value {v!r} is listed twice for {param}")
        seen.append(v)
    return out


def _typed(param: str, current: Any, raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        if isinstance(current, bool):
            low = raw.lower()
            if low in ("true", "yes", "on", "1"):
                return True
            if low in ("false", "no", "off", "0"):
                return False
            raise ValueError(raw)
        if isinstance(current, int):
            return int(raw)
        if isinstance(current, float):
            return float(raw)
    except ValueError as exc:
        kind = type(current).__name__
        raise SweepError(f"'{raw}' is not a valid {kind} for {param}") from exc
    return raw


def _label(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return re.sub(r"[^a-zA-Z0-9.]+", "-", text).strip("-") or "value"


def plan_sweep(
    base: RunConfig,
    param: str,
    values: str | Sequence[Any],
    *,
    max_steps: int | None = None,
) -> list[RunConfig]:
    """One validated config per value (named ``<base>-<param>-<value>``)."""
    if param not in known_keys():
        raise SweepError(
            f"unknown setting '{param}'; sweepable: {', '.join(SUGGESTED_PARAMS)}, ..."
        )
    if param == "name":
        raise SweepError("the run name cannot be swept")
    vals = parse_values(base, param, values)
    stem = base.name or "sweep"
    out = []
    for v in vals:
        try:
            cfg = base.with_value(param, v)
            if max_steps is not None:
                cfg = cfg.with_value("train.max_steps", int(max_steps))
        except ConfigError as exc:
            raise SweepError(f"{param} = {v!r}: {exc}") from exc
        cfg.name = f"{stem}-{param.split('.')[-1]}-{_label(v)}"
        out.append(cfg)
    return out


@dataclass
class SweepRun:
    run_id: str
    path: str
    value: Any
    state: str = "new"


@dataclass
class Sweep:
    """A sweep manifest (``<home>/sweeps/<id>.json``)."""

    id: str
    param: str
    runs: list[SweepRun]
    base_name: str = ""
    max_steps: int | None = None
    created: float = field(default_factory=time.time)
    manifest_path: Path | None = None

    @property
    def values(self) -> list[Any]:
        return [r.value for r in self.runs]

    @property
    def run_ids(self) -> list[str]:
        return [r.run_id for r in self.runs]

    def handles(self) -> list[Run]:
        return [Run(Path(r.path)) for r in self.runs]

    def refresh(self) -> None:
        """Read each run's current state from its status.json."""
        for r, run in zip(self.runs, self.handles(), strict=True):
            if run.path.is_dir():
                r.state = str(run.status().get("state", "new"))
            else:
                r.state = "missing"

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": SWEEP_VERSION,
            "id": self.id,
            "param": self.param,
            "values": self.values,
            "base_name": self.base_name,
            "max_steps": self.max_steps,
            "created": self.created,
            "runs": [
                {"run_id": r.run_id, "path": r.path, "value": r.value, "state": r.state}
                for r in self.runs
            ],
        }

    def save(self) -> Path:
        path = self.manifest_path or sweeps_dir() / f"{self.id}.json"
        atomic_write_json(path, self.to_dict())
        self.manifest_path = path
        return path

    def compare(self) -> Any:
        """A `compare.Comparison` of the sweep's runs (the plot's data is `points`)."""
        from spark_tui.core.evaluate.compare import compare_runs

        return compare_runs(self.handles())

    def points(self, metric: str = "final_eval_loss") -> list[tuple[Any, float | None]]:
        """(parameter value, metric) per run, for the metric-vs-parameter plot.

        `metric` is any compare column: final_loss, final_eval_loss, duration_s,
        tokens_per_s, peak_memory, or an eval.json score (eval_loss, perplexity,
        rougeL, bleu, reward_accuracy, ...).
        """
        from spark_tui.core.evaluate.compare import summarize_run

        out = []
        for r, run in zip(self.runs, self.handles(), strict=True):
            try:
                v = summarize_run(run).value(metric)
            except (SparkError, AttributeError):
                v = None
            out.append((r.value, float(v) if isinstance(v, (int, float)) else None))
        return out


def create_sweep(
    base: RunConfig,
    param: str,
    values: str | Sequence[Any],
    *,
    max_steps: int | None = None,
    root: Path | None = None,
) -> Sweep:
    """Create one run folder per value and the manifest; nothing is trained yet."""
    configs = plan_sweep(base, param, values, max_steps=max_steps)
    vals = parse_values(base, param, values)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    sweep_id = f"{stamp}-{_label(base.name or 'sweep')[:30]}-{param}"
    runs = []
    for cfg, v in zip(configs, vals, strict=True):
        run = create_run(cfg, root=root)
        runs.append(SweepRun(run_id=run.id, path=str(run.path), value=v))
    sweep = Sweep(id=sweep_id, param=param, runs=runs, base_name=base.name, max_steps=max_steps)
    folder = sweeps_dir()
    path = folder / f"{sweep_id}.json"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"{sweep_id}-{n}.json"
    sweep.id = path.stem
    sweep.manifest_path = path
    sweep.save()
    return sweep


def load_sweep(ref: str | Path) -> Sweep:
    """A sweep by manifest path or id (exact or unique part) under `<home>/sweeps`."""
    p = Path(ref).expanduser()
    if not p.is_file():
        folder = sweeps_dir()
        cands = (
            [f for f in sorted(folder.glob("*.json")) if str(ref) in f.stem]
            if folder.is_dir()
            else []
        )
        exact = [f for f in cands if f.stem == str(ref)]
        if exact:
            cands = exact
        if len(cands) != 1:
            what = "no sweep" if not cands else "several sweeps match"
            raise SweepError(f"{what} '{ref}' in {folder}")
        p = cands[0]
    data = read_json(p, default=None)
    if not isinstance(data, dict) or "runs" not in data:
        raise SweepError(f"{p} is not a sweep manifest")
    runs = [SweepRun(**r) for r in data["runs"]]
    return Sweep(
        id=str(data.get("id", p.stem)),
        param=str(data["param"]),
        runs=runs,
        base_name=str(data.get("base_name", "")),
        max_steps=data.get("max_steps"),
        created=float(data.get("created", 0.0)),
        manifest_path=p,
    )


def list_sweeps() -> list[Sweep]:
    folder = sweeps_dir()
    out = []
    for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            out.append(load_sweep(f))
        except SweepError:
            continue
    return out


def _engine_mode(mode: str) -> str:
    if mode in ("process", "inprocess"):
        return mode
    try:
        from spark_tui.core.train import process

        if hasattr(process, "start_training"):
            return "process"
    except ImportError:
        pass
    return "inprocess"


def run_sweep(
    sweep: Sweep,
    *,
    mode: str = "auto",
    progress: Progress | None = None,
    cancel: CancelCheck | None = None,
    poll: float = 1.0,
    after_run: Callable[[Run, dict[str, Any]], None] | None = None,
) -> Sweep:
    """Train the sweep's runs one after another (finished runs are skipped).

    `progress(fraction, message)` is called while runs train; `cancel()` is
    polled and stops the current run gracefully.  `after_run(run, status)` is
    called after each run ends (e.g. to evaluate it).  Returns the sweep with
    each run's final state, also saved in the manifest.
    """
    mode = _engine_mode(mode)
    report = progress or (lambda _f, _m: None)
    total = len(sweep.runs)
    cancelled = False
    for i, (entry, run) in enumerate(zip(sweep.runs, sweep.handles(), strict=True)):
        label = f"{sweep.param} = {entry.value!r} ({i + 1}/{total})"
        st = run.status()
        if st.get("state") == "finished":
            entry.state = "finished"
            continue
        if cancelled or (cancel is not None and cancel()):
            cancelled = True
            break
        report(i / total, f"training {label}")

        def sub(frac: float, msg: str, i: int = i, label: str = label) -> None:
            report((i + max(0.0, min(1.0, frac))) / total, f"{label}: {msg}")

        if mode == "process":
            final = _train_detached(run, sub, cancel, poll)
        else:
            final = _train_inprocess(run, sub, cancel)
        entry.state = str(final.get("state", "failed"))
        sweep.save()
        if after_run is not None:
            after_run(run, final)
        if entry.state == "stopped" and cancel is not None and cancel():
            cancelled = True
    sweep.refresh()
    sweep.save()
    report(1.0, "sweep cancelled" if cancelled else "sweep finished")
    return sweep


def _step_fraction(st: dict[str, Any]) -> tuple[float, str]:
    step, total = st.get("step") or 0, st.get("total_steps") or 0
    frac = float(step) / float(total) if total else 0.0
    phase = st.get("phase") or st.get("state") or ""
    return frac, f"{phase} {step}/{total}" if total else str(phase)


def _train_detached(
    run: Run, report: Progress, cancel: CancelCheck | None, poll: float
) -> dict[str, Any]:
    from spark_tui.core.train import process

    process.start_training(run)
    stopping = False
    while True:
        st = process.wait(run, timeout=poll, poll=min(poll, 0.5))
        if st.get("state") in FINAL_STATES:
            return st
        frac, msg = _step_fraction(st)
        report(frac, msg)
        if not stopping and cancel is not None and cancel():
            process.stop_training(run)
            stopping = True


def _train_inprocess(run: Run, report: Progress, cancel: CancelCheck | None) -> dict[str, Any]:
    from transformers import TrainerCallback

    from spark_tui.core.train.orchestrate import run_training

    class _Follow(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            if state.max_steps:
                report(
                    state.global_step / state.max_steps,
                    f"step {state.global_step}/{state.max_steps}",
                )
            if cancel is not None and cancel():
                # The engine's own stop path (checkpoint, save, state "stopped")
                # picks this file up at the next step.
                (run.path / STOP_FILE).write_text(f"{time.time()}\n", encoding="utf-8")

    from spark_tui.core.train.preflight import preflight

    preflight(run.config(), source=run.config_path)  # what start_training checks first
    return run_training(run, extra_callbacks=[_Follow()], handle_signals=False)
