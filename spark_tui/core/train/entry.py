"""Entry point of the detached training process: `python -m spark_tui.core.train.entry RUN_DIR [--resume]`.

Started by `spark_tui.core.train.process.start_training` under its supervisor, in
its own session, so it outlives the terminal and the TUI.  The engine takes the
run's lock (two trainers never write one run) and sends everything printed to
`train.log`.
Under `accelerate launch` (`launch.py`) every rank runs this same entry point; rank 0
writes the run folder, each rank its own train.rank<N>.log (`orchestrate`, `ranks`).
Exit status: 0 finished or stopped, 1 failed, 2 bad arguments or run locked.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spark_tui.core.base.env import apply_defaults


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spark_tui.core.train.entry")
    parser.add_argument("run_dir", help="the run folder (holds run.toml)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    args = parser.parse_args(argv)

    # Quiet before anything heavy is imported.
    apply_defaults()

    from spark_tui.core.train.runs import Run, RunError

    run = Run(Path(args.run_dir).resolve())
    if not run.config_path.exists():
        print(f"error: {run.path} has no run.toml", file=sys.stderr)
        return 2
    from spark_tui.core.train.orchestrate import run_training

    try:
        final = run_training(run, resume=args.resume, redirect=True)  # takes the run's lock
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if final.get("state") in ("finished", "stopped") else 1


if __name__ == "__main__":
    sys.exit(main())
