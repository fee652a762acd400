"""The training engine: one run folder in, a trained adapter (or model) out.

`run_training(run_dir)` is what the detached training process runs (see
`entry.py`, started by `process.py`); tests and sweeps call it in-process.  It

1. reads `run.toml`, probes the hardware and picks the precision;
2. loads the tokenizer, prepares the data into `<run>/data` (`core.data`);
3. loads the model (4-bit for QLoRA, a 1-label classifier for reward models);
4. builds the TRL trainer for the objective (`core/method/`);
5. trains, writing one JSON line per logging step to `metrics.jsonl`
   (`callbacks.MetricsCallback`) and the state, heartbeat, step and ETA to
   `status.json` (`status.StatusWriter`, fed by `callbacks.StatusCallback`);
6. saves `adapter/` (PEFT) or `model/` (full fine-tuning) with the tokenizer.

Controls and failures:

- Stop (`stop.py`): SIGTERM/SIGINT or a `stop.request` file -> finish the current step,
  save a checkpoint, save the output, state `stopped`.
- Resume: from the newest complete checkpoint; metrics lines after its step are
  dropped first, so the curve continues with no gap and no duplicate step.
- NaN/inf loss -> stop without saving, state `failed` with advice (`advice.py`).
- Out of memory -> state `failed` with the memory estimate and suggestions.
- Any other exception -> full traceback in `train.log`, a short message in
  `status.json`.

The metrics keys are listed in `metrics.METRIC_KEYS`.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import shutil
import signal
import threading
import time
import traceback
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from spark_tui.config import RunConfig
from spark_tui.core.base.atomic import atomic_write_text
from spark_tui.core.base.errors import SparkError
from spark_tui.core.train.advice import divergence_advice, is_oom, oom_advice
from spark_tui.core.train.callbacks import make_callbacks
from spark_tui.core.train.checkpoints import latest_complete_checkpoint, prune_finished
from spark_tui.core.train.context import TrainContext
from spark_tui.core.train.loading import load_model, load_tokenizer
from spark_tui.core.train.logs import log_handler, quiet_libraries, redirect_output
from spark_tui.core.train.metrics import (
    BatchTokenCounter,
    elapsed_at,
    finite,
    gpu_mem_reader,
    truncate_metrics,
)
from spark_tui.core.train.ranks import Rank, current, init_group, local_main_first, main_first
from spark_tui.core.train.runs import TRAINER_LOCK_WAIT_S, Run, RunLock, proc_start_time
from spark_tui.core.train.status import StatusWriter
from spark_tui.core.train.stop import StopControl, StopRequested
from spark_tui.core.train.trainer import (
    build_trainer,
    fetch_model,
    prepare_data,
    resume_data,
    save_output,
    split,
)

log = logging.getLogger("spark_tui.training")


def _phase(status: StatusWriter, control: StopControl, phase: str) -> None:
    """Enter a preparation phase; a stop requested meanwhile (stop file) ends the run here.

    Not in a distributed run (`control.training` is set from the start there): one rank
    leaving early would leave the others waiting in a collective; they all stop together
    at the first step instead.
    """
    if control.check() and not control.training:
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
    ctx: TrainContext,
) -> dict[str, Any]:
    quiet_libraries()
    status.update(phase="loading libraries")
    import transformers

    from spark_tui.core.method.choices import check_combination
    from spark_tui.core.method.peft_config import trainable_summary
    from spark_tui.core.method.precision import choose_precision, detect_hardware
    from spark_tui.core.method.trainer_args import tracker_env
    from spark_tui.core.model.resolve import resolve_model_path

    rank = ctx.rank
    hw = detect_hardware()
    if rank.distributed:
        init_group()  # the launcher's process group: the data is prepared once per machine
        log.info("rank %d of %d (local rank %d)", rank.rank, rank.world, rank.local_rank)
    precision = choose_precision(cfg.train.precision, hw)
    check_combination(cfg)
    ctx.precision = precision
    status.update(device=hw.device, device_name=hw.name, precision=precision)
    log.info("device %s (%s), precision %s", hw.device, hw.name, precision)
    transformers.set_seed(cfg.train.seed)

    model_path = resolve_model_path(cfg.model.id)
    try:
        with local_main_first(rank):  # one download per machine, into its cache
            fetch_model(
                cfg, model_path, status, (lambda: False) if rank.distributed else control.check
            )
    except InterruptedError as exc:
        raise StopRequested(control.reason or str(exc)) from exc
    _phase(status, control, "loading tokenizer")
    tok = load_tokenizer(cfg, model_path)

    _phase(status, control, "preparing data")
    notes: list[str] = []
    prepared = None
    with main_first(rank):  # rank 0 prepares into the run folder
        if rank.main:
            prepared = resume_data(cfg, tok, run, notes) if resume else None
            if prepared is None:
                prepared = prepare_data(cfg, tok, run, status)
    with local_main_first(rank):  # the others read it: the same folder, or a shared one;
        if not rank.main:  # a machine with its own copy of the folder prepares it once
            prepared = resume_data(cfg, tok, run, [])
            if prepared is None:
                prepared = prepare_data(cfg, tok, run, status)
    train_ds = split(prepared.dataset, "train")
    eval_ds = split(prepared.dataset, "validation")
    if train_ds is None:
        raise SparkError("the prepared training set is empty; check the Dataset step's report")
    log.info("data: %d training rows, %d validation rows", len(train_ds), len(eval_ds or []))

    # Where to start: a checkpoint (resume) or step 0 (fresh: old files are cleared).
    ckpt, ckpt_notes = latest_complete_checkpoint(run) if resume else (None, [])
    notes.extend(ckpt_notes)  # a torn checkpoint skipped, and which one is used instead
    run.checkpoints_dir.mkdir(exist_ok=True)
    if ckpt is not None:
        step = int(ckpt.name.split("-")[-1])
        ctx.elapsed_before = elapsed_at(run, step)
        kept = truncate_metrics(run, step) if rank.main else 0
        ctx.first_loss = next((m["loss"] for m in run.metrics() if finite(m.get("loss"))), None)
        log.info("resuming from %s (metrics: %d lines kept up to step %d)", ckpt.name, kept, step)
        status.update(resumed_from=step)
    else:
        if resume:
            log.info("no complete checkpoint to resume from: starting from step 0")
        if rank.main:
            atomic_write_text(run.metrics_path, "")
            for old in run.checkpoints_dir.glob("checkpoint-*"):
                shutil.rmtree(old, ignore_errors=True)
        status.update(resumed_from=None)

    overrides: dict[str, Any] = {}
    saved_template = getattr(tok, "chat_template", None)
    if cfg.method.objective == "sft" and getattr(prepared, "layout", "") == "messages":
        train_ds, eval_ds = _label_chat_rows(train_ds, eval_ds, tok, prepared, notes)
    elif cfg.method.objective == "sft":
        notes.append("loss on every token (plain-text rows, as the Dataset step shows)")

    # "auto" checkpointing is decided against the memory free now, before the
    # model takes its share (the Memory step made the same estimate).
    from spark_tui.core.memory.estimator import checkpointing_decision

    checkpointing, why = checkpointing_decision(cfg)
    if why:
        log.info("%s", why)
    _phase(status, control, "loading model")
    model = load_model(cfg, model_path, tok, hw, precision)

    status_cb, metrics_cb, adalora_cb = make_callbacks(run, status, control, ctx, cfg)
    callbacks: list[Any] = [status_cb, metrics_cb, *extra_callbacks]
    if cfg.method.adapter == "adalora":
        callbacks.append(adalora_cb)
    ctx.gpu_mem = gpu_mem_reader(hw)
    _phase(status, control, "building trainer")
    os.environ.update(tracker_env(cfg, run.path))
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
        checkpointing=checkpointing,
    )
    if rank.distributed:
        how = "FSDP" if getattr(trainer, "is_fsdp_enabled", False) else "DDP"
        if how == "DDP" and os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
            from spark_tui.core.train.launch import FSDP_NEEDS_GPUS

            raise SparkError(FSDP_NEEDS_GPUS)  # what trains is what run.toml says, or nothing
        log.info("distributed: %s over %d processes (%s)", how, rank.world,
                 trainer.accelerator.distributed_type.value)  # fmt: skip
    # What trains, as it trains ("auto" decided, prompt tuning's exception applied).
    status.update(gradient_checkpointing="on" if trainer.args.gradient_checkpointing else "off")
    for note in notes:
        log.warning("%s", note)
    if cfg.method.objective in ("simpo", "orpo"):
        counter = BatchTokenCounter(trainer.data_collator)
        trainer.data_collator = counter
        ctx.token_counter = counter
    trainable, total = trainable_summary(trainer.model)
    log.info(
        "trainable parameters: %s of %s (%.3f %%)",
        f"{trainable:,}",
        f"{total:,}",
        100.0 * trainable / max(total, 1),
    )
    from spark_tui.core.method.trainer_args import estimate_total_steps
    from spark_tui.core.train.disk import run_preflight

    ctx.disk_need = run_preflight(  # a clear refusal when checkpoints + output cannot fit
        run,
        cfg,
        trainable,
        total,
        precision,
        optim=trainer.args.optim,  # an 8-bit optimizer that fell back to AdamW on CPU
        total_steps=estimate_total_steps(cfg, len(train_ds)),
        model_path=model_path,
    )
    status.update(
        notes=notes,
        trainable_params=trainable,
        total_params=total,
        phase="training",
    )
    if control.requested and not rank.distributed:
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
    if ctx.diverged is not None:
        msg, advice = divergence_advice(cfg, *ctx.diverged)
        log.error("%s; %s", msg, "; ".join(advice))
        return {"state": "failed", "error": msg, "advice": advice}
    if control.requested:
        status.update(phase="saving")
        save_output(trainer, tok, out_dir, main=rank.main)
        log.info("stopped at step %d; output saved to %s", trainer.state.global_step, out_dir)
        return {"state": "stopped", "output": str(out_dir), "stop_reason": control.reason}
    if eval_ds is not None and cfg.train.eval_steps <= 0:
        status.update(phase="evaluating")
        trainer.evaluate()
    status.update(phase="saving")
    save_output(trainer, tok, out_dir, main=rank.main)
    if rank.main:
        prune_finished(run, cfg)  # the optimizer states of a finished run are dead weight
    log.info("finished at step %d; output saved to %s", trainer.state.global_step, out_dir)
    return {"state": "finished", "output": str(out_dir)}


def _label_chat_rows(
    train_ds: Any, eval_ds: Any, tok: Any, prepared: Any, notes: list[str]
) -> tuple[Any, Any]:
    """Loss on the assistant turns only, token for token as the Dataset step's preview marks it."""
    from spark_tui.core.data.labels import label_dataset

    template = getattr(prepared, "template", None)
    train = label_dataset(train_ds, tok, template)
    notes.append(f"loss on the assistant turns only (found by {train.method})")
    if train.dropped:
        notes.append(
            f"{train.dropped} training rows left out: the chat template hides their answers"
        )
    if len(train.dataset) == 0:
        raise SparkError(
            "no training row has an answer the chat template lets us mask; "
            "pick another chat template in the Dataset step"
        )
    evals = label_dataset(eval_ds, tok, template).dataset if eval_ds is not None else None
    return train.dataset, (evals if evals is not None and len(evals) else None)


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
    rank = current()
    if not rank.main:  # the other ranks of a distributed run: rank 0 holds the lock
        return _run_locked(run, resume, redirect, extra_callbacks, handle_signals, rank)
    # The lock is taken here, so every caller (the detached process, a sweep, a
    # benchmark) is covered; a second trainer is refused before it touches a file.
    lock = RunLock(run).acquire(wait_s=TRAINER_LOCK_WAIT_S)
    try:
        return _run_locked(run, resume, redirect, extra_callbacks, handle_signals, rank)
    finally:
        lock.release()


def _run_locked(
    run: Run,
    resume: bool,
    redirect: bool,
    extra_callbacks: Iterable[Any],
    handle_signals: bool,
    rank: Rank,
) -> dict[str, Any]:
    status = StatusWriter(run, write=rank.main)
    control = StopControl(run)
    control.training = rank.distributed  # signals never end one rank alone (see `_phase`)
    started = time.time()
    pid = os.getpid()
    status.update(
        world_size=rank.world,
        # Under `accelerate launch` the supervisor's child is the launcher, not rank 0.
        launcher_pid=os.getppid() if rank.distributed else None,
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
        disk_full=None,
        exit_code=None,
        exit_signal=None,
        exit_signal_name=None,
        stalled=None,
        last_step_at=None,
        step_time_s=None,
    )

    def beat() -> None:
        if control.check() and status.get("state") == "training":
            status.update(state="stopping")

    status.on_beat = beat
    if rank.main:
        status.start_heartbeat()

    old_handlers: dict[int, Any] = {}
    if handle_signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            old_handlers[sig] = signal.signal(sig, control.handle_signal)

    ctx = TrainContext(rank=rank)
    cfg: RunConfig | None = None
    result: dict[str, Any]
    with _log_targets(run, rank, redirect):
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
            from spark_tui.core.train.disk import disk_full_result, is_disk_full

            if isinstance(exc, Exception) and is_disk_full(exc, run.path):
                result = disk_full_result(run, exc, need=ctx.disk_need)
            elif is_oom(exc):
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
            if rank.main:
                control.clear()
        final = status.update(
            **result,
            phase="done",
            finished=time.time(),
            eta_s=None,
        )
        log.info("run %s: %s", run.id, final.get("state"))
    return final


@contextlib.contextmanager
def _log_targets(run: Run, rank: Rank, redirect: bool) -> Iterator[None]:
    """Where the output goes: train.log; under a launcher, every rank's output (libraries,
    tracebacks) into its own train.rank<N>.log and rank 0's log lines into train.log too."""
    with contextlib.ExitStack() as stack:
        if not rank.distributed:
            if redirect:
                stack.enter_context(redirect_output(run.log_path))
            stack.enter_context(log_handler(run.log_path, to_stderr=redirect))
        else:
            own = run.path / rank.log_name
            if redirect:
                stack.enter_context(redirect_output(own))
            stack.enter_context(log_handler(own, to_stderr=redirect))
            if rank.main:
                stack.enter_context(log_handler(run.log_path, to_stderr=False))
        yield


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"
