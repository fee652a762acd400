"""Run management: `spark-tui runs`, `stop`, `kill`, `resume`, `attach`, `open`.

RUN is a run id (or a unique part of it) or a run folder.  None of these
commands imports torch: they only read and signal run folders.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from spark_tui.commands.args import add_command, add_detach, add_json, add_run
from spark_tui.commands.train import add_machine_rank, after_start, print_machine_commands


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "runs", handle_runs, "list runs with state, steps and final loss")
    add_json(p, "print JSON instead of a table")

    p = add_command(
        subparsers, "stop", handle_stop, "stop a run gracefully (checkpoint, then state stopped)"
    )
    add_run(p)
    p.add_argument("--wait", action="store_true", help="wait until it has stopped")

    p = add_command(subparsers, "kill", handle_kill, "kill a run at once (no checkpoint; resumable)")
    add_run(p)

    p = add_command(
        subparsers, "resume", handle_resume, "continue a stopped or died run from its checkpoint"
    )
    add_run(p)
    add_machine_rank(p)
    add_detach(p, "start it and return at once")

    p = add_command(
        subparsers,
        "launch",
        handle_launch,
        "start this machine's processes of a distributed run (accelerate launch)",
    )
    add_run(p, "the run folder (at the same path on every machine) or its run.toml")
    add_machine_rank(p)
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    add_detach(p, "start it and return at once")

    add_run(add_command(subparsers, "attach", handle_attach, "follow a running or finished run"))

    add_run(
        add_command(
            subparsers,
            "open",
            handle_open,
            "open the wizard at a run's step (Train while it trains, Evaluate once finished)",
        )
    )


def _fmt_loss(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, (int, float)) else "-"


def handle_runs(args: argparse.Namespace) -> int:
    from spark_tui.core.train.runs import list_runs

    rows = [r.summary() for r in list_runs()]
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not rows:
        console.print("no runs yet; start one with `spark-tui train` or `spark-tui`")
        return 0
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("RUN", no_wrap=True, overflow="fold")
    table.add_column("STATE", no_wrap=True)
    table.add_column("STEPS", no_wrap=True, justify="right")
    table.add_column("LOSS", no_wrap=True, justify="right")
    table.add_column("METHOD", no_wrap=True)
    table.add_column("MODEL", overflow="ellipsis", no_wrap=True)
    colours = {
        "finished": "green",
        "training": "cyan",
        "preparing": "cyan",
        "stopping": "yellow",
        "stalled": "yellow",
        "stopped": "yellow",
        "failed": "red",
        "died": "red",
    }
    for r in rows:
        state = r["state"]
        colour = colours.get(state, "white")
        model = str(r.get("model"))
        table.add_row(
            r["id"],
            f"[{colour}]{state}[/]",
            f"{r.get('step') or 0}/{r.get('total_steps') or '?'}",
            _fmt_loss(r.get("final_loss")),
            f"{r.get('objective')}/{r.get('adapter')}",
            model.rsplit("/", 1)[-1] if "/" in model else model,
        )
    console.print(table)
    return 0


def handle_stop(args: argparse.Namespace) -> int:
    from spark_tui.core.train import process
    from spark_tui.core.train.runs import resolve_run

    run = resolve_run(args.run)
    if not process.stop_training(run):
        print(f"run {run.id} is not running ({run.status().get('state')})")
        return 1
    print(
        f"stop requested for {run.id}: it finishes the current step, saves a checkpoint and stops"
    )
    if args.wait:
        st = process.wait(run)
        print(f"run {run.id}: {st.get('state')} at step {st.get('step')}")
    return 0


def handle_kill(args: argparse.Namespace) -> int:
    from spark_tui.core.train import process
    from spark_tui.core.train.runs import resolve_run

    run = resolve_run(args.run)
    if not process.kill_training(run):
        print(f"run {run.id} has no live training process ({run.status().get('state')})")
        return 1
    print(f"killed {run.id}; `spark-tui resume {run.id}` continues from its last checkpoint")
    return 0


def handle_resume(args: argparse.Namespace) -> int:
    from rich.console import Console

    from spark_tui.core.train import process
    from spark_tui.core.train.runs import resolve_run

    run = resolve_run(args.run)
    ckpt = run.latest_checkpoint()
    process.resume_training(run, machine_rank=args.machine_rank)
    console = Console()
    where = f"step {ckpt.name.split('-')[-1]}" if ckpt else "step 0 (no checkpoint yet)"
    console.print(f"resuming {run.id} from {where}")
    return after_start(run, args, console)


def handle_launch(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console

    from spark_tui.core.base.errors import SparkError
    from spark_tui.core.train import launch, process
    from spark_tui.core.train.runs import resolve_run

    target = Path(args.run)
    run = resolve_run(target.parent if target.name == "run.toml" else args.run)
    cfg = run.config()
    if not launch.is_distributed(cfg):
        raise SparkError(
            f"{run.config_path} trains in one process ([distributed] strategy = "
            f"{cfg.distributed.strategy!r}); start it with `spark-tui resume` or the wizard"
        )
    console = Console()
    print_machine_commands(run, cfg, console)
    process.start_training(run, resume=args.resume, machine_rank=args.machine_rank)
    return after_start(run, args, console)


def handle_attach(args: argparse.Namespace) -> int:
    from rich.console import Console

    from spark_tui.commands.train import follow
    from spark_tui.core.train.runs import resolve_run

    run = resolve_run(args.run)
    if run.status().get("state", "new") == "new":
        print(f"run {run.id} has not been started; `spark-tui resume {run.id}` starts it")
        return 1
    return follow(run, Console())


def handle_open(args: argparse.Namespace) -> int:
    """Resolve RUN (an unknown run is a clear error here, not in the TUI); the CLI then
    opens the wizard on it (commands never import the app)."""
    from spark_tui.core.train.runs import resolve_run

    args.open_run = str(resolve_run(args.run).path)
    return 0
