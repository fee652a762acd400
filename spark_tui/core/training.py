"""The training engine: one run folder in, a trained adapter (or model) out.

`run_training(run_dir)` is what the detached training process runs (see
`train_process.py`); tests and the benchmark call it in-process.  It

1. reads `run.toml`, probes the hardware and picks the precision;
2. loads the tokenizer, prepares the data into `<run>/data` (`core.data`);
3. loads the model (4-bit for QLoRA, a 1-label classifier for reward models);
4. builds the TRL trainer for the objective (`methods` + `trl_compat`);
5. trains, writing one JSON line per logging step to `metrics.jsonl`
   (`MetricsCallback`) and the state, heartbeat, step and ETA to `status.json`
   (`StatusWriter` + `StatusCallback`);
6. saves `adapter/` (PEFT) or `model/` (full fine-tuning) with the tokenizer.

Controls and failures:

- Stop: SIGTERM/SIGINT or a `stop.request` file -> finish the current step,
  save a checkpoint, save the output, state `stopped`.
- Resume: from the newest complete checkpoint; metrics lines after its step are
  dropped first, so the curve continues with no gap and no duplicate step.
- NaN/inf loss -> stop without saving, state `failed` with advice.
- Out of memory -> state `failed` with the memory estimate and suggestions.
- Any other exception -> full traceback in `train.log`, a short message in
  `status.json`.

The metrics keys are listed in `METRIC_KEYS`.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import math
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from spark_tui.config import RunConfig
from spark_tui.core.errors import SparkError
from spark_tui.core.fsutil import atomic_write_text, read_json
from spark_tui.core.runs import Run, proc_start_time, read_metrics

log = logging.getLogger("spark_tui.training")

STOP_FILE = "stop.request"
HEARTBEAT_INTERVAL_S = 5.0

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
_SKIP_LOG_KEYS = {
    "total_flos", "train_runtime", "train_samples_per_second", "train_steps_per_second",
    "train_loss", "train_tokens_per_second", "num_input_tokens_seen", "eval_runtime",
    "eval_samples_per_second", "eval_steps_per_second", "epoch", "step",
}  # fmt: skip


class StopRequested(BaseException):
    """Raised by the signal handler when a stop arrives before the training loop runs.

    A BaseException (like KeyboardInterrupt) so that libraries' `except Exception`
    blocks do not swallow it.
    """


class TrainingDiverged(SparkError):
    """The loss became NaN or infinite."""


# --------------------------------------------------------------------------- status


class StatusWriter:
    """Owns status.json for the training process: one in-memory dict, written atomically.

    The heartbeat thread and the trainer callbacks both write through it, under
    one lock, so neither overwrites the other's fields.
    """

    def __init__(self, run: Run) -> None:
        self.run = run
        self._lock = threading.Lock()
        self._st: dict[str, Any] = read_json(run.status_path, default=None) or {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_beat: Callable[[], None] | None = None

    def update(self, **changes: Any) -> dict[str, Any]:
        with self._lock:
            self._st.update(changes)
            now = time.time()
            self._st["updated"] = now
            self._st["heartbeat"] = now
            _write_json_replace(self.run.status_path, self._st)
            return dict(self._st)

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            return self._st.get(key, default)

    def start_heartbeat(self, interval: float = HEARTBEAT_INTERVAL_S) -> None:
        def beat() -> None:
            while not self._stop.wait(interval):
                try:
                    if self.on_beat is not None:
                        self.on_beat()
                    self.update()
                except Exception:  # pragma: no cover - a full disk must not kill training
                    log.exception("heartbeat failed")

        self._thread = threading.Thread(target=beat, name="spark-heartbeat", daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * HEARTBEAT_INTERVAL_S)


def _write_json_replace(path: Path, data: dict[str, Any]) -> None:
    """Write-then-rename (readers never see half a file) without fsync.

    status.json is rewritten every step; an fsync each time would cost real
    training time on slow disks, and after a power cut the heartbeat is stale
    anyway, so the run shows as died and resumes from its (fsynced) checkpoint.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class StopControl:
    """A stop request from a signal or from the stop file in the run folder."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.requested = False
        self.training = False  # True once the trainer loop runs: signals then stop gracefully
        self.reason = ""

    @property
    def stop_file(self) -> Path:
        return self.run.path / STOP_FILE

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


# --------------------------------------------------------------------------- callbacks


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _system_memory() -> tuple[int | None, int | None]:
    try:
        from spark_tui.core.hardware import read_meminfo

        mi = read_meminfo()
        total = mi.get("MemTotal", 0)
        return max(0, total - mi.get("MemAvailable", 0)), total
    except Exception:
        return None, None


def _rss() -> int | None:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:
        return None


class TokenCounter:
    """Wraps a data collator to count the non-padding tokens of every batch it builds.

    Used where the trainer does not log `num_tokens` itself (TRL's CPO/ORPO).
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


def _make_callbacks(run: Run, status: StatusWriter, control: StopControl, ctx: dict[str, Any]):
    """Build the trainer callbacks (transformers is imported here, inside the process)."""
    from transformers import TrainerCallback

    class StatusCallback(TrainerCallback):
        """status.json: state, step/total, ETA; and the stop request -> save + stop."""

        def __init__(self) -> None:
            self.session_start = time.time()
            self.session_first_step = 0

        def on_train_begin(self, args, state, control_, **kw):
            self.session_start = time.time()
            self.session_first_step = state.global_step
            ctx["total_steps"] = state.max_steps
            control.training = True
            status.update(
                state="training",
                phase="training",
                step=state.global_step,
                total_steps=state.max_steps,
                epoch=state.epoch or 0.0,
                eta_s=None,
                session_started=self.session_start,
            )

        def on_step_end(self, args, state, control_, **kw):
            done = state.global_step - self.session_first_step
            spent = time.time() - self.session_start
            left = max(0, state.max_steps - state.global_step)
            eta = spent / done * left if done > 0 else None
            fields: dict[str, Any] = {
                "step": state.global_step,
                "total_steps": state.max_steps,
                "epoch": state.epoch,
                "eta_s": eta,
                "elapsed_s": ctx.get("elapsed_before", 0.0) + spent,
            }
            if control.check():
                control_.should_save = True
                control_.should_training_stop = True
                fields["state"] = "stopping"
                log.info("stop requested: saving a checkpoint at step %d", state.global_step)
            status.update(**fields)

        def on_save(self, args, state, control_, **kw):
            status.update(last_checkpoint=state.global_step)

    class MetricsCallback(TrainerCallback):
        """One JSON line per logging step in metrics.jsonl (+ the NaN/inf guard)."""

        def __init__(self) -> None:
            self.last_time: float | None = None
            self.last_step = 0
            self.last_tokens = 0
            self.session_start = time.time()
            self.first_loss: float | None = ctx.get("first_loss")

        def on_train_begin(self, args, state, control_, **kw):
            self.last_time = time.time()
            self.session_start = self.last_time
            self.last_step = state.global_step
            self.last_tokens = 0

        def _tokens(self, logs: dict[str, Any]) -> int | None:
            if "num_tokens" in logs and _finite(logs["num_tokens"]):
                return int(logs["num_tokens"])
            counter = ctx.get("token_counter")
            return counter.tokens if counter is not None else None

        def on_log(self, args, state, control_, logs=None, **kw):
            logs = dict(logs or {})
            if "train_runtime" in logs or "train_loss" in logs:
                status.update(summary={k: v for k, v in logs.items() if _finite(v)})
                return
            now = time.time()
            is_eval = any(k.startswith("eval_") for k in logs) and "loss" not in logs
            rec: dict[str, Any] = {
                "kind": "eval" if is_eval else "train",
                "step": state.global_step,
                "epoch": round(float(state.epoch or 0.0), 4),
                "time": round(now, 3),
                "elapsed_s": round(ctx.get("elapsed_before", 0.0) + now - self.session_start, 3),
            }
            for key, value in logs.items():
                if key in _SKIP_LOG_KEYS or key == "num_tokens":
                    continue
                if isinstance(value, bool):
                    continue
                if isinstance(value, (int, float)):
                    if _finite(value):
                        rec[key] = float(value)
                    else:  # JSON has no NaN/inf: null, and the name of what went bad
                        rec[key] = None
                        rec.setdefault("nonfinite", {})[key] = _nonfinite(value)
            # The reward trainer logs accuracy/margin: show them on the same chart keys.
            for src, dst in (("accuracy", "rewards/accuracies"), ("margin", "rewards/margins")):
                pre = "eval_" if is_eval else ""
                if pre + src in rec and pre + dst not in rec:
                    rec[pre + dst] = rec[pre + src]
            if not is_eval:
                dt = now - (self.last_time or now)
                steps = state.global_step - self.last_step
                tokens = self._tokens(logs)
                if tokens is not None:
                    rec["tokens_seen"] = tokens
                    if dt > 0 and tokens >= self.last_tokens:
                        rec["tokens_per_s"] = round((tokens - self.last_tokens) / dt, 2)
                    self.last_tokens = tokens
                if dt > 0 and steps > 0:
                    rows = (
                        steps * args.per_device_train_batch_size * args.gradient_accumulation_steps
                    )
                    rec["samples_per_s"] = round(rows / dt, 3)
                self.last_time = now
                self.last_step = state.global_step
            rss = _rss()
            if rss is not None:
                rec["rss_bytes"] = rss
            used, total = _system_memory()
            if used is not None:
                rec["sys_mem_used_bytes"] = used
                rec["sys_mem_total_bytes"] = total
            gpu = ctx.get("gpu_mem")
            if gpu is not None:
                rec.update(gpu())
            with open(run.metrics_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(rec) + "\n")
            # NaN/inf guard: a diverged run is stopped before it writes a checkpoint.
            bad = [k for k in ("loss", "eval_loss") if k in logs and not _finite(logs[k])]
            if not bad and ctx.get("precision") != "fp16":
                # With fp16 loss scaling an inf grad norm is a skipped step, not a failure.
                bad = [k for k in ("grad_norm",) if k in logs and not _finite(logs[k])]
            if not bad and "loss" in logs and not is_eval:
                loss = float(logs["loss"])
                if self.first_loss is None:
                    self.first_loss = loss
                elif exploded(loss, self.first_loss):
                    bad = ["loss"]
            if bad:
                ctx["diverged"] = (state.global_step, bad[0], logs[bad[0]], self.first_loss)
                control_.should_training_stop = True
                control_.should_save = False
                control_.should_evaluate = False
            if "loss" in logs and _finite(logs["loss"]):
                status.update(loss=float(logs["loss"]))
            if "eval_loss" in logs and _finite(logs["eval_loss"]):
                status.update(eval_loss=float(logs["eval_loss"]))

    class AdaLoraCallback(TrainerCallback):
        """AdaLoRA reallocates ranks from the gradients, before they are cleared."""

        def on_pre_optimizer_step(self, args, state, control_, model=None, **kw):
            base = getattr(model, "base_model", None)
            if base is not None and hasattr(base, "update_and_allocate"):
                base.update_and_allocate(state.global_step)

    return StatusCallback(), MetricsCallback(), AdaLoraCallback()


def _nonfinite(value: Any) -> str:
    """JSON has no NaN/Infinity: write them as strings the followers can recognise."""
    v = float(value)
    if math.isnan(v):
        return "nan"
    return "inf" if v > 0 else "-inf"


# --------------------------------------------------------------------------- metrics file


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
        except json.JSONDecodeError:
            continue  # a torn last line of a killed process
        if int(rec.get("step", 0)) <= last_step:
            lines.append(line)
    atomic_write_text(run.metrics_path, "".join(x + "\n" for x in lines))
    return len(lines)


def _elapsed_at(run: Run, step: int) -> float:
    rows = [m for m in read_metrics(run.metrics_path) if int(m.get("step", 0)) <= step]
    return float(rows[-1].get("elapsed_s", 0.0)) if rows else 0.0


# --------------------------------------------------------------------------- output redirection


@contextlib.contextmanager
def redirect_output(log_path: Path):
    """Point fds 1 and 2 (and so every library and C extension) at train.log."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    saved = os.dup(1), os.dup(2)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        with contextlib.suppress(Exception):
            sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
            sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        os.close(fd)


@contextlib.contextmanager
def _log_handler(log_path: Path, to_stderr: bool):
    """Our own log lines (timestamped) into train.log."""
    root = logging.getLogger("spark_tui")
    handler: logging.Handler
    if to_stderr:
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()


# --------------------------------------------------------------------------- failures


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
            from spark_tui.core import hardware, memory

            probe = hardware.probe(with_disk=False, with_processes=False)
            est = memory.estimate_config(cfg, hardware=probe)
            v = memory.verdict(est, probe)
            msg = (
                f"out of memory: the estimated peak is {memory.fmt_gb(est.total)} and "
                f"{memory.fmt_gb(v.budget)} was available ({v.budget_source})"
            )
            suggestions = [
                f"{sg.title} ({', '.join(f'{k}={val}' for k, val in sg.changes.items())})"
                for sg in v.suggestions[:4]
            ]
        except Exception:  # the estimator is optional here; never hide the real failure
            log.debug("memory estimate unavailable", exc_info=True)
    if not suggestions:
        suggestions = [
            "lower train.micro_batch_size (raise train.grad_accum to keep the effective batch)",
            "lower data.max_length",
            "turn on train.gradient_checkpointing",
            "use QLoRA (method.adapter = 'qlora') or a smaller model",
        ]
    return msg, suggestions


EXPLODE_FACTOR = 10.0
EXPLODE_MIN = 20.0


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
    if _finite(value):
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


# --------------------------------------------------------------------------- model + trainer


def _model_load_kwargs(cfg: RunConfig, hw: Any, precision: str) -> dict[str, Any]:
    from spark_tui.core import methods

    kw: dict[str, Any] = {
        "dtype": methods.load_dtype(cfg, precision),
        "trust_remote_code": bool(cfg.model.trust_remote_code),
    }
    if cfg.model.revision:
        kw["revision"] = cfg.model.revision
    q = methods.bnb_config(cfg, hw, precision)
    if q is not None:
        kw["quantization_config"] = q
        kw["dtype"] = q.bnb_4bit_compute_dtype
        if hw.device == "cuda":
            kw["device_map"] = {"": 0}
    return kw


def load_tokenizer(cfg: RunConfig, model_path: str) -> Any:
    from transformers import AutoTokenizer

    kw: dict[str, Any] = {"trust_remote_code": bool(cfg.model.trust_remote_code)}
    if cfg.model.revision:
        kw["revision"] = cfg.model.revision
    tok = AutoTokenizer.from_pretrained(model_path, **kw)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    return tok


def load_model(cfg: RunConfig, model_path: str, tok: Any, hw: Any, precision: str) -> Any:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    kw = _model_load_kwargs(cfg, hw, precision)
    if cfg.method.objective == "reward":
        model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=1, **kw)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_path, **kw)
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tok.pad_token_id
    if hasattr(model.config, "use_cache"):
        model.config.use_cache = False
    return model


def _gpu_mem_reader(hw: Any) -> Callable[[], dict[str, int]] | None:
    if hw.device != "cuda":
        return None
    import torch

    def read() -> dict[str, int]:
        return {
            "gpu_mem_bytes": int(torch.cuda.memory_allocated()),
            "gpu_mem_peak_bytes": int(torch.cuda.max_memory_allocated()),
        }

    return read


def _prepare_data(cfg: RunConfig, tok: Any, run: Run, status: StatusWriter) -> Any:
    from spark_tui.core.data import prepare_dataset

    last = [0.0]

    def progress(stage: str, done: float, total: float | None) -> None:
        now = time.time()
        if now - last[0] < 0.5 and (total is None or done < total):
            return  # status.json is rewritten at most twice a second
        last[0] = now
        frac = float(done) / float(total) if total else None
        status.update(phase="preparing data", phase_detail=str(stage), phase_progress=frac)

    return prepare_dataset(cfg, tok, out_dir=run.data_dir, progress=progress)


def _split(dataset: Any, name: str) -> Any:
    try:
        ds = dataset[name]
    except (KeyError, TypeError):
        return None
    return ds if ds is not None and len(ds) > 0 else None


def build_trainer(
    cfg: RunConfig,
    run: Run,
    *,
    model: Any,
    tokenizer: Any,
    train_dataset: Any,
    eval_dataset: Any,
    hw: Any,
    precision: str,
    callbacks: Iterable[Any] = (),
    notes: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """The TRL trainer for `cfg` on an already-loaded model (also used by the benchmark)."""
    from spark_tui.core import methods, trl_compat

    notes = notes if notes is not None else []
    classes = trl_compat.trainer_classes(cfg.method.objective)
    total = methods.estimate_total_steps(cfg, len(train_dataset))
    peft_cfg = methods.build_peft_config(cfg, model, total_steps=total)
    kwargs = methods.trainer_kwargs(
        cfg,
        output_dir=run.checkpoints_dir,
        hw=hw,
        precision=precision,
        has_eval=eval_dataset is not None,
        notes=notes,
    )
    kwargs.update(overrides or {})
    args = trl_compat.make_config(classes, **kwargs)
    trainer_kw: dict[str, Any] = {
        "model": model,
        "args": args,
        "train_dataset": train_dataset,
        "eval_dataset": eval_dataset,
        "processing_class": tokenizer,
        "callbacks": list(callbacks),
    }
    if peft_cfg is not None:
        trainer_kw["peft_config"] = peft_cfg
    if (
        cfg.method.objective in ("dpo", "kto")
        and cfg.preference.reference == "copy"
        and peft_cfg is not None
    ):
        # An explicit frozen copy instead of "adapters disabled" (more memory, same maths).
        import copy

        trainer_kw["ref_model"] = copy.deepcopy(model).eval()
    return classes.trainer(**trainer_kw)


def _save_output(trainer: Any, tokenizer: Any, dest: Path) -> None:
    """Save weights + tokenizer into `dest` atomically (a temp folder renamed into place)."""
    tmp = dest.parent / f".{dest.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.save_model(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    old = dest.parent / f".{dest.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def _quiet_libraries() -> None:
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    with contextlib.suppress(Exception):
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_warning()
        hf_logging.disable_progress_bar()
    with contextlib.suppress(Exception):
        import datasets

        datasets.disable_progress_bars()


def _phase(status: StatusWriter, control: StopControl, phase: str) -> None:
    """Enter a preparation phase; a stop requested meanwhile (stop file) ends the run here."""
    if control.check():
        raise StopRequested(control.reason)
    status.update(phase=phase)


def _train(
    run: Run,
    cfg: RunConfig,
    *,
    resume: bool,
    status: StatusWriter,
    control: StopControl,
    extra_callbacks: Iterable[Any],
    ctx: dict[str, Any],
) -> dict[str, Any]:
    _quiet_libraries()
    status.update(phase="loading libraries")
    import transformers

    from spark_tui.core import methods
    from spark_tui.core.models import resolve_model_path

    hw = methods.detect_hardware()
    precision = methods.choose_precision(cfg.train.precision, hw)
    methods.check_combination(cfg)
    ctx["precision"] = precision
    status.update(device=hw.device, device_name=hw.name, precision=precision)
    log.info("device %s (%s), precision %s", hw.device, hw.name, precision)
    transformers.set_seed(cfg.train.seed)

    _phase(status, control, "loading tokenizer")
    model_path = resolve_model_path(cfg.model.id)
    tok = load_tokenizer(cfg, model_path)

    _phase(status, control, "preparing data")
    prepared = _prepare_data(cfg, tok, run, status)
    train_ds = _split(prepared.dataset, "train")
    eval_ds = _split(prepared.dataset, "validation")
    if train_ds is None:
        raise SparkError("the prepared training set is empty; check the Dataset step's report")
    log.info("data: %d training rows, %d validation rows", len(train_ds), len(eval_ds or []))

    # Where to start: a checkpoint (resume) or step 0 (fresh: old files are cleared).
    ckpt = run.latest_checkpoint() if resume else None
    run.checkpoints_dir.mkdir(exist_ok=True)
    if ckpt is not None:
        step = int(ckpt.name.split("-")[-1])
        ctx["elapsed_before"] = _elapsed_at(run, step)
        kept = truncate_metrics(run, step)
        first = next((m["loss"] for m in run.metrics() if _finite(m.get("loss"))), None)
        ctx["first_loss"] = first
        log.info("resuming from %s (metrics: %d lines kept up to step %d)", ckpt.name, kept, step)
        status.update(resumed_from=step)
    else:
        if resume:
            log.info("no complete checkpoint to resume from: starting from step 0")
        atomic_write_text(run.metrics_path, "")
        for old in run.checkpoints_dir.glob("checkpoint-*"):
            shutil.rmtree(old, ignore_errors=True)
        status.update(resumed_from=None)

    overrides: dict[str, Any] = {}
    saved_template = getattr(tok, "chat_template", None)
    if cfg.method.objective == "sft" and getattr(prepared, "layout", "") == "messages":
        # Loss on the assistant turns only: the training twin of the chat template
        # marks them with {% generation %} (it renders the identical text).
        from spark_tui.core.data import training_chat_template

        twin = training_chat_template(tok)
        if twin:
            tok.chat_template = twin
            overrides["assistant_only_loss"] = True
        else:
            log.info("no assistant-only twin of this chat template: loss on the whole conversation")

    _phase(status, control, "loading model")
    model = load_model(cfg, model_path, tok, hw, precision)

    status_cb, metrics_cb, adalora_cb = _make_callbacks(run, status, control, ctx)
    callbacks: list[Any] = [status_cb, metrics_cb, *extra_callbacks]
    if cfg.method.adapter == "adalora":
        callbacks.append(adalora_cb)
    notes: list[str] = []
    ctx["gpu_mem"] = _gpu_mem_reader(hw)
    _phase(status, control, "building trainer")
    trainer = build_trainer(
        cfg,
        run,
        model=model,
        tokenizer=tok,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        hw=hw,
        precision=precision,
        callbacks=callbacks,
        notes=notes,
        overrides=overrides,
    )
    for note in notes:
        log.warning("%s", note)
    if cfg.method.objective in ("simpo", "orpo"):
        counter = TokenCounter(trainer.data_collator)
        trainer.data_collator = counter
        ctx["token_counter"] = counter
    trainable, total = methods.trainable_summary(trainer.model)
    log.info(
        "trainable parameters: %s of %s (%.3f %%)",
        f"{trainable:,}",
        f"{total:,}",
        100.0 * trainable / max(total, 1),
    )
    status.update(
        notes=notes,
        trainable_params=trainable,
        total_params=total,
        phase="training",
    )
    if control.requested:
        raise StopRequested(control.reason)
    # Everything built so far (data rows, reports, model objects) lives for the whole
    # run: take it out of the garbage collector's view so its full collections during
    # training stay as cheap as in a minimal script.
    del prepared
    gc.collect()
    gc.freeze()
    try:
        trainer.train(resume_from_checkpoint=str(ckpt) if ckpt is not None else None)
    finally:
        gc.unfreeze()  # in-process callers (tests, sweeps) must be able to free this run

    out_dir = run.model_dir if cfg.method.adapter == "full" else run.adapter_dir
    tok.chat_template = saved_template  # save the deployable template, not the training twin
    if "diverged" in ctx:
        step, key, value, first = ctx["diverged"]
        msg, advice = divergence_advice(cfg, step, key, value, first)
        log.error("%s; %s", msg, "; ".join(advice))
        return {"state": "failed", "error": msg, "advice": advice}
    if control.requested:
        status.update(phase="saving")
        _save_output(trainer, tok, out_dir)
        log.info("stopped at step %d; output saved to %s", trainer.state.global_step, out_dir)
        return {"state": "stopped", "output": str(out_dir), "stop_reason": control.reason}
    if eval_ds is not None and cfg.train.eval_steps <= 0:
        status.update(phase="evaluating")
        trainer.evaluate()
    status.update(phase="saving")
    _save_output(trainer, tok, out_dir)
    log.info("finished at step %d; output saved to %s", trainer.state.global_step, out_dir)
    return {"state": "finished", "output": str(out_dir)}


def run_training(
    run_dir: str | Path | Run,
    *,
    resume: bool = False,
    redirect: bool = False,
    extra_callbacks: Iterable[Any] = (),
    handle_signals: bool = True,
) -> dict[str, Any]:
    """Train one run folder to the end; returns the final status dict.

    `redirect=True` (the training process) sends fds 1/2 to train.log; in-process
    callers (tests, benchmark) keep their own output and get only our log lines
    in train.log.  Never raises for training failures: they end up in the status.
    """
    run = run_dir if isinstance(run_dir, Run) else Run(Path(run_dir).resolve())
    status = StatusWriter(run)
    control = StopControl(run)
    started = time.time()
    pid = os.getpid()
    status.update(
        state="preparing",
        phase="starting",
        pid=pid,
        pid_start=proc_start_time(pid),
        started=started,
        error=None,
        advice=None,
        step=status.get("step", 0) if resume else 0,
        eta_s=None,
        finished=None,
        # Fields of a previous session of this run that no longer apply.
        output=None,
        stop_reason=None,
        oom=None,
        summary=None,
        phase_detail=None,
        phase_progress=None,
    )

    def beat() -> None:
        if control.check() and status.get("state") == "training":
            status.update(state="stopping")

    status.on_beat = beat
    status.start_heartbeat()

    old_handlers: dict[int, Any] = {}
    if handle_signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            old_handlers[sig] = signal.signal(sig, control.handle_signal)

    ctx: dict[str, Any] = {}
    cfg: RunConfig | None = None
    result: dict[str, Any]
    redirect_cm = redirect_output(run.log_path) if redirect else contextlib.nullcontext()
    with redirect_cm, _log_handler(run.log_path, to_stderr=redirect):
        log.info(
            "spark-tui training process %d for run %s%s", pid, run.id, " (resume)" if resume else ""
        )
        try:
            cfg = run.config()
            result = _train(
                run,
                cfg,
                resume=resume,
                status=status,
                control=control,
                extra_callbacks=extra_callbacks,
                ctx=ctx,
            )
        except StopRequested as exc:
            log.info("%s before training started", exc)
            result = {"state": "stopped", "stop_reason": str(exc)}
        except BaseException as exc:  # noqa: BLE001 - everything must end up in the status
            log.error("training failed: %s\n%s", exc, traceback.format_exc().rstrip())
            if is_oom(exc):
                msg, advice = oom_advice(cfg)
                result = {"state": "failed", "error": msg, "advice": advice, "oom": True}
            elif isinstance(exc, SparkError):
                result = {"state": "failed", "error": str(exc)}
            elif isinstance(exc, KeyboardInterrupt):
                result = {"state": "stopped", "stop_reason": "interrupted"}
            else:
                result = {"state": "failed", "error": f"{type(exc).__name__}: {_short(exc)}"}
        finally:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            status.stop_heartbeat()
            control.clear()
        final = status.update(
            **result,
            phase="done",
            finished=time.time(),
            eta_s=None,
        )
        log.info("run %s: %s", run.id, final.get("state"))
    return final


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"
