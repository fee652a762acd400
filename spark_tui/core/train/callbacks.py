"""The trainer callbacks: status.json, metrics.jsonl, the stop request, the NaN/inf guard.

They are built inside the training process (transformers is imported there) by
`make_callbacks`, and share the run's `TrainContext` with the orchestrator.
They also rotate the checkpoints (`checkpoints.rotate`; the trainer's own
`save_total_limit` is off) and remove those saved after the loss went bad.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from spark_tui.config import RunConfig
from spark_tui.core.train import checkpoints
from spark_tui.core.train.advice import exploded
from spark_tui.core.train.context import Divergence, TrainContext
from spark_tui.core.train.metrics import (
    SKIP_LOG_KEYS,
    finite,
    nonfinite,
    read_rss,
    read_system_memory,
)
from spark_tui.core.train.ranks import any_rank, sum_ranks
from spark_tui.core.train.runs import Run
from spark_tui.core.train.status import StatusWriter
from spark_tui.core.train.stop import StopControl

log = logging.getLogger("spark_tui.training")


def make_callbacks(
    run: Run,
    status: StatusWriter,
    control: StopControl,
    ctx: TrainContext,
    cfg: RunConfig | None = None,
) -> tuple[Any, Any, Any]:
    """Build the trainer callbacks (transformers is imported here, inside the process).

    `cfg` defaults to the run's run.toml (it gives the number of checkpoints to keep).
    """
    from transformers import TrainerCallback

    keep = (cfg or run.config()).train.save_total_limit
    main = ctx.rank.main  # only rank 0 writes the run folder; every rank takes the decisions

    def discard_unverified() -> None:
        """The NaN/inf guard tripped: no checkpoint saved after the last good log line stays."""
        if not main:
            return
        step = ctx.last_finite_step
        why = f"saved after step {step}, the last logged step whose loss was finite"
        checkpoints.discard_after(run.checkpoints_dir, step, why)

    class StatusCallback(TrainerCallback):
        """status.json: state, step/total, ETA; and the stop request -> save + stop."""

        def __init__(self) -> None:
            self.session_start = time.time()
            self.session_first_step = 0

        def on_train_begin(self, args, state, control_, **kw):
            self.session_start = time.time()
            self.session_first_step = state.global_step
            control.training = True
            # Checkpoints after the resume point are torn or from a discarded future:
            # the trainer would save into their folders, mixing two runs' files.
            if main:
                checkpoints.clear_leftovers(run.checkpoints_dir)
                checkpoints.discard_after(
                    run.checkpoints_dir,
                    state.global_step,
                    f"saved after the resume point (step {state.global_step})",
                )
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
                "elapsed_s": ctx.elapsed_before + spent,
            }
            # A Stop reaches one rank (rank 0's stop file or signal): all stop at this step.
            stop = any_rank(control.check())
            if stop and not control.requested:
                control.requested, control.reason = True, "stop requested (on another rank)"
            if stop:
                control_.should_save = True
                control_.should_training_stop = True
                fields["state"] = "stopping"
                log.info("stop requested: saving a checkpoint at step %d", state.global_step)
            if control_.should_training_stop or control_.should_save:
                # The current logging window is written even when it is not full (a stop,
                # max_steps or a checkpoint off the logging grid).  The trainer logs before
                # it saves, so every checkpoint's step is in metrics.jsonl, vouched for by
                # the NaN guard, and a resume from it continues with no window left out.
                control_.should_log = True
            # Plain progress is throttled; a stop, a save or the last step is written at once.
            routine = not (control_.should_training_stop or control_.should_save)
            status.update(throttle=routine, **fields)

        def on_save(self, args, state, control_, **kw):
            if not main:
                return
            checkpoints.rotate(
                run.checkpoints_dir,
                keep=keep,
                verified_up_to=ctx.last_finite_step,
                current=state.global_step,
            )
            status.update(last_checkpoint=state.global_step)

        def on_train_end(self, args, state, control_, **kw):
            if ctx.diverged is not None:
                discard_unverified()

    class MetricsCallback(TrainerCallback):
        """One JSON line per logging step in metrics.jsonl (+ the NaN/inf guard)."""

        def __init__(self) -> None:
            self.last_time: float | None = None
            self.last_step = 0
            self.last_tokens = 0
            self.session_start = time.time()
            self.first_loss: float | None = ctx.first_loss

        def on_train_begin(self, args, state, control_, **kw):
            self.last_time = time.time()
            self.session_start = self.last_time
            self.last_step = state.global_step
            self.last_tokens = 0
            # A resume: the metrics kept up to the checkpoint vouch for the steps before it.
            good = [
                int(m["step"])
                for m in run.metrics()
                if m.get("kind") == "train"
                and finite(m.get("loss"))
                and int(m.get("step", 0)) <= state.global_step
            ]
            ctx.last_finite_step = max(good, default=0)

        def _tokens(self, logs: dict[str, Any]) -> int | None:
            if "num_tokens" in logs and finite(logs["num_tokens"]):
                return int(logs["num_tokens"])
            counter = ctx.token_counter
            return counter.tokens if counter is not None else None

        def on_log(self, args, state, control_, logs=None, **kw):
            logs = dict(logs or {})
            if "train_runtime" in logs or "train_loss" in logs:
                status.update(summary={k: v for k, v in logs.items() if finite(v)})
                return
            now = time.time()
            is_eval = any(k.startswith("eval_") for k in logs) and "loss" not in logs
            rec: dict[str, Any] = {
                "kind": "eval" if is_eval else "train",
                "step": state.global_step,
                "epoch": round(float(state.epoch or 0.0), 4),
                "time": round(now, 3),
                "elapsed_s": round(ctx.elapsed_before + now - self.session_start, 3),
            }
            for key, value in logs.items():
                if key in SKIP_LOG_KEYS or key == "num_tokens":
                    continue
                if isinstance(value, bool):
                    continue
                if isinstance(value, (int, float)):
                    if finite(value):
                        rec[key] = float(value)
                    else:  # JSON has no NaN/inf: null, and the name of what went bad
                        rec[key] = None
                        rec.setdefault("nonfinite", {})[key] = nonfinite(value)
            # The reward trainer logs accuracy/margin: show them on the same chart keys.
            for src, dst in (("accuracy", "rewards/accuracies"), ("margin", "rewards/margins")):
                pre = "eval_" if is_eval else ""
                if pre + src in rec and pre + dst not in rec:
                    rec[pre + dst] = rec[pre + src]
            if not is_eval:
                dt = now - (self.last_time or now)
                steps = state.global_step - self.last_step
                tokens = self._tokens(logs)
                if tokens is not None and "num_tokens" not in logs:
                    tokens = sum_ranks(tokens)  # counted per rank; TRL's num_tokens is global
                if tokens is not None:
                    rec["tokens_seen"] = tokens
                    if dt > 0 and tokens >= self.last_tokens:
                        rec["tokens_per_s"] = round((tokens - self.last_tokens) / dt, 2)
                    self.last_tokens = tokens
                if dt > 0 and steps > 0:
                    rows = (
                        steps
                        * args.per_device_train_batch_size
                        * args.gradient_accumulation_steps
                        * ctx.rank.world
                    )
                    rec["samples_per_s"] = round(rows / dt, 3)
                self.last_time = now
                self.last_step = state.global_step
            rss = read_rss()
            if rss is not None:
                rec["rss_bytes"] = rss
            used, total = read_system_memory()
            if used is not None:
                rec["sys_mem_used_bytes"] = used
                rec["sys_mem_total_bytes"] = total
            gpu = ctx.gpu_mem
            if gpu is not None:
                rec.update(gpu())
            if main:
                with open(run.metrics_path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(rec) + "\n")
            # NaN/inf guard: a diverged run is stopped before it writes a checkpoint.
            bad = [k for k in ("loss", "eval_loss") if k in logs and not finite(logs[k])]
            if not bad and ctx.precision != "fp16":
                # With fp16 loss scaling an inf grad norm is a skipped step, not a failure.
                bad = [k for k in ("grad_norm",) if k in logs and not finite(logs[k])]
            if not bad and "loss" in logs and not is_eval:
                loss = float(logs["loss"])
                if self.first_loss is None:
                    self.first_loss = loss
                elif exploded(loss, self.first_loss):
                    bad = ["loss"]
            # The logged loss is the mean over ranks, but each rank's first loss may differ
            # (a resume on another machine): one verdict for all, or the others would hang.
            if any_rank(bool(bad)) and not bad:
                bad = [next((k for k in ("loss", "eval_loss") if k in logs), "loss")]
            if bad:
                ctx.diverged = Divergence(
                    state.global_step, bad[0], logs.get(bad[0]), self.first_loss
                )
                control_.should_training_stop = True
                control_.should_save = False
                control_.should_evaluate = False
                discard_unverified()
            elif "loss" in logs and not is_eval:
                ctx.last_finite_step = state.global_step
            if "loss" in logs and finite(logs["loss"]):
                status.update(loss=float(logs["loss"]))
            if "eval_loss" in logs and finite(logs["eval_loss"]):
                status.update(eval_loss=float(logs["eval_loss"]))

    class AdaLoraCallback(TrainerCallback):
        """AdaLoRA reallocates ranks from the gradients, before they are cleared."""

        def on_pre_optimizer_step(self, args, state, control_, model=None, **kw):
            base = getattr(model, "base_model", None)
            if base is not None and hasattr(base, "update_and_allocate"):
                base.update_and_allocate(state.global_step)

    return StatusCallback(), MetricsCallback(), AdaLoraCallback()
