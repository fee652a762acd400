"""The CPU bench suite in one go: one table of figure, target, met or not.

    .venv/bin/python bench/run_all.py [--only startup,eval_speed,...]

Runs each bench script in its own process, one after the other (they measure
the CPU, so never side by side), with settings that keep the whole suite
under ~15 minutes on a 2-core machine, and reads the `RESULT {json}` line
each prints last.  The scripts themselves take longer settings for the
figures in RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent

Row = tuple[str, str, str, bool | None]  # figure, value, target, met
Extract = Callable[[dict], list[Row]]


def _startup(r: dict) -> list[Row]:
    paint, key = r["first_paint_s"]["median"], r["first_key_s"]["median"]
    ratio = r["paint_over_import"]
    return [
        ("first paint", f"{paint:.2f} s", "<= 1.0 s", paint <= 1.0),
        ("first paint / torch+transformers import", f"{ratio:.0%}", "<= 20 %", ratio <= 0.20),
        ("first key handled", f"{key:.2f} s", "<= 1.0 s", key <= 1.0),
    ]


def _ui(r: dict) -> list[Row]:
    fb = r["first_byte_ms"]
    p95 = float(fb["p95"]) if isinstance(fb, dict) else float(fb)
    return [("Train screen key -> update p95, trainer busy", f"{p95:.0f} ms", "<= 100 ms",
             p95 <= 100)]  # fmt: skip


def _naive(r: dict) -> list[Row]:
    x = r["speed_vs_naive"]
    return [("tokens/s ours / TRL defaults, bf16 off (CPU)", f"{x:.2f}x", ">= 1.3x", x >= 1.3)]


def _overhead(r: dict) -> list[Row]:
    x = r["overhead_ratio"]
    return [("engine overhead, same config (ours/plain)", f"{x:.3f}", ">= 0.97", x >= 0.97)]


def _eval(r: dict) -> list[Row]:
    x, s = r["eval_speedup"], r["eval_step_s"]
    return [
        ("Evaluate: per-row loop / ours", f"{x:.2f}x", ">= 3x", x >= 3),
        ("Evaluate step, bundled set", f"{s:.1f} s", "<= 25 s", s <= 25),
    ]


# name -> (script and arguments, what to read from its RESULT line)
SUITE: dict[str, tuple[list[str], Extract]] = {
    "startup": (["startup.py", "--rounds", "3"], _startup),
    "ui_latency": (["ui_latency.py", "--presses", "50"], _ui),
    "speed_vs_naive": (["speed_vs_naive.py", "--steps", "5", "--plain-fp32"], _naive),
    "train_overhead": (["train_overhead.py", "--steps", "8", "--rounds", "1"], _overhead),
    "eval_speed": (["eval_speed.py"], _eval),
}


def run_one(name: str) -> tuple[list[Row], float]:
    argv, extract = SUITE[name]
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, str(BENCH / argv[0]), *argv[1:]], capture_output=True, text=True
    )
    wall = time.time() - t0
    lines = proc.stdout.splitlines()
    result: dict | None = None
    for line in reversed(lines):
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
            break
    if proc.returncode != 0 or result is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return [(name, "failed", tail[0][:60], None)], wall
    return extract(result), wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="comma list of: " + ", ".join(SUITE))
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or list(SUITE)
    rows: list[Row] = []
    started = time.time()
    for name in names:
        got, wall = run_one(name)
        print(f"{name}: {wall:.0f} s", flush=True)
        rows.extend(got)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'figure'.ljust(width)}  {'value':>10}  {'target':>10}  met")
    for fig, value, target, met in rows:
        mark = "yes" if met else ("no" if met is False else "?")
        print(f"{fig.ljust(width)}  {value:>10}  {target:>10}  {mark}")
    print(f"\nsuite: {time.time() - started:.0f} s (target < 15 min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
