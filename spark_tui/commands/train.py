"""`spark-tui train`: write a run folder, start the detached trainer, follow it.

    spark-tui train RUN.toml
    spark-tui train --model default --data default --objective sft --method lora --max-steps 30

The run folder is written first (so the run exists even if the terminal goes
away); training happens in its own process.  Without --detach the command
follows the run until it ends and exits non-zero if it failed.  Ctrl-C only
detaches: the run goes on (`spark-tui attach RUN` / `spark-tui stop RUN`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from spark_tui.commands.args import add_command, add_detach, add_json, add_repeatable
from spark_tui.config import METHODS
from spark_tui.core.base.errors import SparkError
from spark_tui.core.method.choices import OBJECTIVES
from spark_tui.core.method.presets import PRESETS

# Flags that set one run.toml value each: (argparse dest, dotted key).
_FLAG_KEYS = (
    ("max_steps", "train.max_steps"),
    ("epochs", "train.epochs"),
    ("learning_rate", "train.learning_rate"),
    ("micro_batch_size", "train.micro_batch_size"),
    ("max_length", "data.max_length"),
    ("neftune_alpha", "train.neftune_alpha"),
)


def register(subparsers: Any) -> None:
    p = add_command(
        subparsers,
        "train",
        handle,
        help="fine-tune headless (writes a run folder, trains in a detached process)",
        description="Fine-tune headless: write a run folder, start the training process, "
        "and follow it until it ends (unless --detach).",
    )
    p.add_argument("config", nargs="?", help="a run.toml to train (flags below override it)")
    p.add_argument("--model", help='model: "default" (bundled SmolLM2-135M), a Hub id or a folder')
    p.add_argument(
        "--data", help='dataset: "default" (bundled set for the objective), a file or Hub id'
    )
    p.add_argument("--objective", choices=OBJECTIVES, help="training objective (default sft)")
    p.add_argument("--method", choices=METHODS, help="adaptation method (default lora)")
    p.add_argument(
        "--preset", choices=PRESETS, help="apply a preset first (flags still override it)"
    )
    p.add_argument("--max-steps", type=int, help="stop after N optimizer steps")
    p.add_argument("--epochs", type=float, help="epochs (when --max-steps is not given)")
    p.add_argument("--learning-rate", "--lr", type=float, dest="learning_rate")
    p.add_argument("--micro-batch-size", type=int, dest="micro_batch_size")
    p.add_argument("--max-length", type=int, help="longest sequence in tokens")
    p.add_argument("--neftune-alpha", type=float, help="NEFTune noise alpha (0 = off)")
    p.add_argument("--name", help="run name (the folder gets a timestamp prefix)")
    add_repeatable(
        p,
        "--set",
        "KEY=VALUE",
        "set any config value, e.g. --set lora.r=8 --set train.packing=true",
    )
    p.add_argument(
        "--launch",
        action="store_true",
        help="a run.toml with a [distributed] strategy: start this machine's processes through "
        "accelerate launch (without it, only the run folder, accelerate.yaml and the command "
        "for each machine are written)",
    )
    add_machine_rank(p)
    add_detach(p)
    add_json(p, "print the final status as JSON")


def _parse_value(text: str) -> Any:
    import sys as _sys

    if _sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except Exception:
        return text  # a bare string


def build_config(args: argparse.Namespace):
    """The RunConfig from a TOML file and/or flags (preset first, flags win)."""
    from spark_tui.config import RunConfig
    from spark_tui.core.method.choices import apply_method, check_combination
    from spark_tui.core.method.presets import apply_preset, recommended_learning_rate

    cfg = RunConfig.load(args.config) if args.config else RunConfig()
    if args.model:
        cfg.model.id = args.model
    if args.data:
        cfg.data.path = args.data
    if args.objective:
        cfg.method.objective = args.objective
    if args.method:
        apply_method(cfg, args.method)
    if args.preset:
        cfg = apply_preset(cfg, args.preset)
    changes: dict[str, Any] = {
        key: getattr(args, dest) for dest, key in _FLAG_KEYS if getattr(args, dest) is not None
    }
    if args.name:
        changes["name"] = args.name
    for item in args.set:
        if "=" not in item:
            raise SparkError(f"--set {item!r}: write KEY=VALUE, e.g. --set lora.r=8")
        key, value = item.split("=", 1)
        changes[key.strip()] = _parse_value(value.strip())
    for key, value in changes.items():
        cfg = cfg.with_value(key, value)
    # The recommended rate depends on the final objective, adapter and model, so it
    # is chosen after every flag and --set has been applied.
    if "train.learning_rate" not in changes and not args.config and not args.preset:
        cfg.train.learning_rate = recommended_learning_rate(cfg)
    check_combination(cfg)
    return cfg


def _ensure_model(cfg: Any, console: Any) -> None:
    """Convert the bundled default model here, with progress, rather than silently in the trainer."""
    if cfg.model.id not in ("", "default"):
        return
    from spark_tui.core.model import resolve as models

    if models.default_model_ready():
        return
    from rich.progress import BarColumn, Progress, TextColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), console=console, transient=True
    ) as prog:
        task = prog.add_task("converting the default model", total=1.0)

        def report(frac: float, msg: str) -> None:
            prog.update(task, completed=frac, description=msg)

        models.ensure_default_model(progress=report)
    console.print("default model ready")


def handle(args: argparse.Namespace) -> int:
    from rich.console import Console

    from spark_tui.core.train import process
    from spark_tui.core.train.preflight import preflight
    from spark_tui.core.train.runs import create_run

    console = Console(stderr=False)
    cfg = build_config(args)
    _ensure_model(cfg, console)
    preflight(cfg, source="the command line")  # a refusal leaves no empty run folder behind
    run = create_run(cfg)
    console.print(f"run [bold]{run.id}[/] -> {run.path}")
    from spark_tui.core.train import launch

    if launch.is_distributed(cfg):
        launch.write_launch_config(run, cfg)
        print_machine_commands(run, cfg, console)
        if not args.launch:
            console.print("not started (add --launch to start this machine's processes)")
            return 0
    elif args.launch:
        raise SparkError(
            "--launch starts a distributed run: set [distributed] strategy (ddp or fsdp) and "
            "more than one process in run.toml, or on the Method step"
        )
    process.start_training(run, machine_rank=args.machine_rank)
    return after_start(run, args, console)


def after_start(run: Any, args: argparse.Namespace, console: Any) -> int:
    """Follow the started run, or say how to follow it (detached, or machine 1.. of a launch)."""
    rank = getattr(args, "machine_rank", None)
    if rank:  # rank 0 of this run is on machine 0: its folder there has the progress
        console.print(
            f"machine {rank}'s processes are running; follow the run on machine 0 "
            f"(`spark-tui attach {run.id}`); this machine's logs: {run.path}/train.rank*.log"
        )
        return 0
    if args.detach:
        console.print(
            f"training in the background; follow with `spark-tui attach {run.id}`, "
            f"stop with `spark-tui stop {run.id}`"
        )
        return 0
    return follow(run, console, as_json=getattr(args, "json", False))


def add_machine_rank(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--machine-rank",
        type=int,
        dest="machine_rank",
        help="a distributed run: which machine this is (0 = the main one; default from run.toml)",
    )


def print_machine_commands(run: Any, cfg: Any, console: Any) -> None:
    """The command each machine of a distributed run runs (the same as the Review step)."""
    import shlex

    from spark_tui.core.train import launch

    d = cfg.distributed
    console.print(
        f"{d.strategy.upper()}: {d.processes_per_machine} process(es) on each of "
        f"{d.machines} machine(s); accelerate config: {run.path / 'accelerate.yaml'}",
        soft_wrap=True,
    )
    for rank, argv in launch.machine_commands(run, cfg):
        console.print(
            f"  machine {rank}: {shlex.join(argv)}", markup=False, highlight=False, soft_wrap=True
        )  # one line, to copy


# --------------------------------------------------------------------------- following


def _fmt_eta(seconds: Any) -> str:
    if seconds is None:
        return "--:--"
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _metric_line(m: dict[str, Any], total: Any) -> str:
    parts = [f"step {m.get('step')}/{total or '?'}"]
    if m.get("kind") == "eval":
        value = m.get("eval_loss")  # null in metrics.jsonl when the loss was NaN/inf
        if isinstance(value, (int, float)):
            parts.append(f"eval_loss {value:.4f}")
        else:
            parts.append(f"eval_loss {(m.get('nonfinite') or {}).get('eval_loss', 'n/a')}")
    else:
        if isinstance(m.get("loss"), (int, float)):
            parts.append(f"loss {m['loss']:.4f}")
        elif "loss" in m:
            parts.append(f"loss {m['loss']}")
        if isinstance(m.get("learning_rate"), (int, float)):
            parts.append(f"lr {m['learning_rate']:.2e}")
        if m.get("tokens_per_s") is not None:
            parts.append(f"{m['tokens_per_s']:.0f} tok/s")
        if m.get("rewards/margins") is not None:
            parts.append(f"margin {m['rewards/margins']:.3f}")
    return "  ".join(parts)


def follow(run: Any, console: Any, *, as_json: bool = False, interval: float = 0.5) -> int:
    """Follow a run until it ends, printing progress; returns the exit code for its state."""
    from spark_tui.core.train.process import RunFollower

    follower = RunFollower(run, interval=interval)
    last_state = ""
    try:
        if console.is_terminal:
            final = _follow_rich(follower, console)
        else:
            final = {}
            for up in follower:
                st = up.status
                state = up.state
                phase = st.get("phase") or ""
                if state != last_state or (state == "preparing"):
                    label = f"{state} ({phase})" if phase and state == "preparing" else state
                    if label != last_state:
                        console.print(f"[{time.strftime('%H:%M:%S')}] {label}")
                        last_state = label
                for m in up.metrics:
                    console.print(_metric_line(m, st.get("total_steps")))
                final = st
    except KeyboardInterrupt:
        follower.close()
        console.print(
            f"\ndetached; the run goes on. `spark-tui attach {run.id}` follows it again, "
            f"`spark-tui stop {run.id}` stops it."
        )
        return 130
    return _report_final(run, final, console, as_json)


def _follow_rich(follower: Any, console: Any) -> dict[str, Any]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
    )

    final: dict[str, Any] = {}
    with Progress(
        TextColumn("[bold]{task.fields[state]:<9}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[tps]}"),
        TextColumn("ETA {task.fields[eta]}"),
        TextColumn("[yellow]{task.fields[elapsed]}[/]"),
        console=console,
        transient=False,
    ) as prog:
        task = prog.add_task(
            "train", total=None, state="starting", loss="-", tps="", eta="--:--", elapsed=""
        )
        stall_said = said_phase = ""
        for up in follower:
            st = up.status
            if up.state == "stalled" and st.get("stalled") and not stall_said:
                stall_said = str(st["stalled"])
                prog.console.print(f"[yellow]stalled:[/] {stall_said}; still following")
            elif up.state != "stalled" and stall_said:
                stall_said = ""
                prog.console.print("[green]moving again[/]")
            for m in up.metrics:
                if m.get("kind") == "eval" and isinstance(m.get("eval_loss"), (int, float)):
                    prog.console.print(f"step {m['step']}: eval_loss {m['eval_loss']:.4f}")
            train = [m for m in follower.metrics if m.get("kind") == "train"]
            last = train[-1] if train else {}
            loss = last.get("loss")
            state = up.state
            phase = str(st.get("phase") or "")
            if state == "preparing" and phase != said_phase:  # one line per phase
                said_phase = phase
                prog.console.print(f"[dim]{phase}[/]")
            frac = st.get("phase_progress") if state == "preparing" else None
            if isinstance(frac, (int, float)):  # download / data: the bar shows that phase
                total, done = 100, int(100 * frac)
                tps = str(st.get("phase_detail") or "").split(" · ", 1)[-1]
            else:
                total, done = st.get("total_steps") or None, st.get("step") or 0
                tps = f"{last['tokens_per_s']:.0f} tok/s" if last.get("tokens_per_s") else ""
            prog.update(
                task,
                total=total,
                completed=done,
                state=state[:9],
                loss=f"{loss:.4f}" if isinstance(loss, (int, float)) else (loss or "-"),
                tps=tps,
                eta=_fmt_eta(st.get("eta_s")),
                elapsed=_fmt_eta(st.get("elapsed_s")) if st.get("elapsed_s") else "",
            )
            final = st
    return final


def _report_final(run: Any, st: dict[str, Any], console: Any, as_json: bool) -> int:
    import json

    summary = run.summary()
    state = summary["state"]
    if as_json:
        print(json.dumps({**summary, "status": st}, indent=2, default=str))
    else:
        first, last = summary.get("first_loss"), summary.get("final_loss")
        losses = ""
        if isinstance(first, (int, float)) and isinstance(last, (int, float)):
            losses = f"; loss {first:.4f} -> {last:.4f}"
        console.print(
            f"run {run.id}: [bold]{state}[/] at step {summary['step']}/{summary['total_steps']}{losses}"
        )
        if st.get("output") and state in ("finished", "stopped"):
            console.print(f"output: {st['output']}")
        if state in ("failed", "died"):
            if st.get("error"):
                console.print(f"[red]error:[/] {st['error']}")
            elif state == "died":
                console.print("[red]the training process ended without a word (killed?)[/]")
            for a in st.get("advice") or []:
                console.print(f"  - {a}")
            console.print(f"log: {Path(run.path) / 'train.log'}")
        if state in ("died", "stopped"):
            console.print(f"resume with `spark-tui resume {run.id}`")
    return 0 if state in ("finished", "stopped") else 1
