"""Does the Train screen still answer keys while training eats the CPU?

    .venv/bin/python bench/ui_latency.py [--presses 60] [--max-steps 400] [--idle 5]

Setup, through the product itself: a temporary SPARK_TUI_HOME (the converted default model
in the shared cache is reused), `spark-tui train --model default --data default --detach`
with enough steps to outlast the measurement and no checkpoints, a wait until the run's
status says `training`, then the TUI on that run in an 80x24 pseudo-terminal:
`spark-tui open RUN` where that command exists, else a small launcher file that builds
`SparkTuiApp` and calls `open_run(RUN)` once the app is ready (`--launcher` picks one).

Measure: first a few seconds with no key pressed, to see the screen's own refresh (the
follow worker redraws the status twice a second, the memory gauges once a second): its
burst rate is reported.  Then `?` presses, ~150 ms apart plus jitter, alternately opening
and closing the help panel (no side effect on the run; s/K/r/d are never sent).  For each
press, output is split into bursts (a burst ends after 30 ms without output); the answer is
the first burst after the key that contains text of the view the key shows ("Close (Esc)"
for the panel, the Train screen's "Back" button once it is uncovered), so a periodic
refresh that happens to follow the key is not taken for the answer.  Figures: key written
-> first byte of that burst, and -> end of that burst; p50/p95/max; target p95 <= 100 ms.

The training run is killed and every process this script started is ended, even on error.
Prints `RESULT {json}` last.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from startup import COLS, ROOT, ROWS, SPARK_TUI, reap, spawn_pty, strip_ansi  # noqa: E402

sys.path.insert(0, str(ROOT))

KEY = b"?"  # the Train screen (StepScreen) and the help panel both bind question_mark
OPEN_MARKER = "Close (Esc)"  # screens/help.py: the panel's close button
CLOSE_MARKER = "Back"  # screens/base.py: "◀ Back", covered by the panel, drawn again after
TRAIN_MARKER = "Evaluate"  # screens/train.py relabels Next "Evaluate ▶": the Train screen is up
GAP_S = 0.030  # a burst ends after this long without output
ANSWER_TIMEOUT_S = 3.0
TARGET_P95_MS = 100.0

LAUNCHER = r"""
import sys
from pathlib import Path

from spark_tui.app import SparkTuiApp


class OpenRun(SparkTuiApp):
    CSS_PATH = str(Path(sys.modules[SparkTuiApp.__module__].__file__).parent / SparkTuiApp.CSS_PATH)

    def on_ready(self) -> None:
        self.open_run(sys.argv[1])


OpenRun().run()
"""

Chunk = tuple[float, bytes]


class Terminal:
    """The TUI's pty, read continuously (so the app never blocks on a full terminal)."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid, self.fd = pid, fd
        self.chunks: list[Chunk] = []
        self.closed = False

    def _read(self, timeout: float) -> bool:
        if self.closed:
            time.sleep(max(0.0, timeout))
            return False
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not ready:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return False
        self.chunks.append((time.perf_counter(), data))
        return True

    def pump(self, seconds: float) -> None:
        end = time.perf_counter() + seconds
        while (left := end - time.perf_counter()) > 0:
            self._read(left)

    def wait_for(self, marker: str, timeout: float) -> bool:
        end = time.perf_counter() + timeout
        while time.perf_counter() < end and not self.closed:
            self._read(min(0.05, end - time.perf_counter()))
            if marker in text(self.chunks[-50:]):
                return True
        return False

    def answer(self, t_key: float, marker: str) -> list[Chunk] | None:
        """Read until a burst after `t_key` containing `marker` has ended; that burst."""
        end = t_key + ANSWER_TIMEOUT_S
        while time.perf_counter() < end and not self.closed:
            self._read(min(GAP_S / 3, end - time.perf_counter()))
            post = [c for c in self.chunks if c[0] >= t_key]
            if not post or time.perf_counter() - post[-1][0] < GAP_S:
                continue  # a burst may still be going on
            for burst in bursts(post):
                if marker in text(burst):
                    return burst
        return None


def text(chunks) -> str:
    return strip_ansi(b"".join(c[1] for c in chunks))


def bursts(chunks: list[Chunk]) -> list[list[Chunk]]:
    out: list[list[Chunk]] = []
    for c in chunks:
        if out and c[0] - out[-1][-1][0] <= GAP_S:
            out[-1].append(c)
        else:
            out.append([c])
    return out


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between ranks."""
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of a process, in clock ticks (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def cores(ticks0: int | None, ticks1: int | None, wall: float) -> float | None:
    """CPU cores used between two cpu_ticks readings `wall` seconds apart."""
    if ticks0 is None or ticks1 is None or wall <= 0:
        return None
    return (ticks1 - ticks0) / os.sysconf("SC_CLK_TCK") / wall


def start_training(env: dict[str, str], home: Path, max_steps: int):
    """`spark-tui train ... --detach` in `home`; returns the Run (core object) it made."""
    from spark_tui.core.train.runs import Run

    argv = [SPARK_TUI, "train", "--model", "default", "--data", "default"]
    argv += ["--max-steps", str(max_steps), "--set", "train.save_steps=100000"]
    argv += ["--name", "bench-ui", "--detach"]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800)
    dirs = sorted((home / "runs").glob("*")) if (home / "runs").is_dir() else []
    if proc.returncode != 0 or not dirs:
        raise SystemExit(f"spark-tui train failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return Run(dirs[-1])


def wait_training(run, timeout: float = 1800) -> dict:
    end = time.time() + timeout
    while time.time() < end:
        st = run.status()
        if st.get("state") == "training":
            return st
        if st.get("state") in ("failed", "died", "finished", "stopped"):
            log = run.log_path.read_text(errors="replace")[-3000:] if run.log_path.exists() else ""
            raise SystemExit(f"run {run.id} is {st.get('state')} before training:\n{log}")
        time.sleep(0.5)
    raise SystemExit(f"run {run.id} not training after {timeout:.0f} s")


def has_open_command(env: dict[str, str]) -> bool:
    proc = subprocess.run(
        [SPARK_TUI, "open", "--help"], env=env, capture_output=True, text=True, timeout=120
    )
    return proc.returncode == 0


def tui_argv(how: str, run, env: dict[str, str], tmp: Path) -> list[str]:
    if how == "auto":
        how = "open" if has_open_command(env) else "python"
    if how == "open":
        return [SPARK_TUI, "open", run.id]
    script = tmp / "open_run_tui.py"  # Textual wants its App subclass in a file
    script.write_text(LAUNCHER, encoding="utf-8")
    python = str(Path(SPARK_TUI).with_name("python"))
    return [python, str(script), str(run.path)]


def stop_everything(home: Path, term: Terminal | None, env: dict[str, str]) -> None:
    """End the TUI (ctrl+q, confirm, then signals) and kill every run in `home`."""
    from spark_tui.core.train.runs import Run

    if term is not None:
        try:
            os.write(term.fd, b"\x11")  # ctrl+q: an active run asks to confirm
            term.pump(1.0)
            os.write(term.fd, b"y")
            term.pump(1.0)
        except OSError:
            pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if reap(term.pid, sig, 3.0):
                break
        os.close(term.fd)
    for run in map(Run, sorted((home / "runs").glob("*")) if (home / "runs").is_dir() else []):
        kill = [SPARK_TUI, "kill", str(run.path)]
        subprocess.run(kill, env=env, capture_output=True, timeout=120, check=False)
        st = run.status()
        for pid in (st.get("pid"), st.get("supervisor_pid")):
            if isinstance(pid, int) and cpu_ticks(pid) is not None:
                try:  # the CLI could not: no trainer may outlive the benchmark
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


def press(term: Terminal, marker: str) -> dict:
    term.pump(0.0)  # take what is already there, so it is not read as the answer
    before = term.chunks[-1][0] if term.chunks else 0.0
    t_key = time.perf_counter()
    os.write(term.fd, KEY)
    burst = term.answer(t_key, marker)
    if burst is None:  # did the view change at all, later?  The next key depends on it
        term.pump(1.0)
        late = marker in text(c for c in term.chunks if c[0] >= t_key)
        return {"marker": marker, "timeout": True, "late": late}
    post = [c for c in term.chunks if c[0] >= t_key]
    k = next(k for k in range(len(burst)) if marker in text(burst[: k + 1]))
    return {
        "marker": marker,
        "timeout": False,
        "first_ms": (burst[0][0] - t_key) * 1000,
        "end_ms": (burst[-1][0] - t_key) * 1000,
        "marker_ms": (burst[k][0] - t_key) * 1000,  # the chunk that completed the marker
        # A refresh burst came first: the plain first-byte-after-key figure would be wrong.
        "preceded": post[0] is not burst[0],
        # Output within GAP_S before the key: the answer burst may have begun as a refresh,
        # so first_ms may flatter; marker_ms does not.
        "merged": t_key - before < GAP_S,
    }


def stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"p50": pct(values, 50), "p95": pct(values, 95), "max": max(values), "n": len(values)}


def fmt(s: dict[str, float]) -> str:
    if not s:
        return "no answers"
    return f"p50 {s['p50']:.1f} ms  p95 {s['p95']:.1f} ms  max {s['max']:.1f} ms  (n={s['n']})"


def measure(term: Terminal, run, presses: int, idle: float, settle: float, show: bool) -> dict:
    if not term.wait_for(TRAIN_MARKER, 120):
        raise SystemExit("the Train screen never showed:\n" + text(term.chunks[-200:])[-3000:])
    term.pump(settle)
    t0, n0, tui0 = time.perf_counter(), len(term.chunks), cpu_ticks(term.pid)
    term.pump(idle)
    idle_bursts = bursts(term.chunks[n0:])
    idle_rate = len(idle_bursts) / (time.perf_counter() - t0)
    idle_cpu = cores(tui0, cpu_ticks(term.pid), time.perf_counter() - t0)
    idle_marked = sum(1 for b in idle_bursts if CLOSE_MARKER in text(b) or OPEN_MARKER in text(b))
    print(
        f"no key for {idle:.0f} s: {len(idle_bursts)} bursts = {idle_rate:.1f}/s, "
        f"{idle_marked} of them with a marker text; the TUI used {idle_cpu or 0:.2f} cores",
        flush=True,
    )
    for b in idle_bursts if show else []:
        snippet = " ".join(text(b).split())[:70]
        size = sum(len(c[1]) for c in b)
        print(f"  idle burst at +{b[0][0] - t0:6.3f} s {size:6} bytes: {snippet}")

    trainer_pid = run.status().get("pid")
    step0 = run.status().get("step", 0)
    ticks0 = cpu_ticks(trainer_pid) if trainer_pid else None
    tui0, w0 = cpu_ticks(term.pid), time.perf_counter()
    results: list[dict] = []
    help_open = False
    for i in range(presses):
        r = press(term, CLOSE_MARKER if help_open else OPEN_MARKER)
        results.append(r)
        if not r["timeout"] or r["late"]:
            help_open = not help_open
        state = "open" if help_open else "closed"
        shown = "timeout" if r["timeout"] else f"{r['first_ms']:.1f} / {r['end_ms']:.1f} ms"
        print(f"press {i + 1:3} help {state:6} {shown}", flush=True)
        term.pump(0.150 + random.uniform(0, 0.100))
    if help_open:
        press(term, CLOSE_MARKER)
    wall = time.perf_counter() - w0
    cpu = cores(ticks0, cpu_ticks(trainer_pid) if trainer_pid else None, wall)
    tui_cpu = cores(tui0, cpu_ticks(term.pid), wall)
    st = run.status()
    return {
        "results": results,
        "idle_burst_rate": idle_rate,
        "idle_bursts_with_marker": idle_marked,
        "idle_tui_cpu_cores": idle_cpu,
        "trainer_cpu_cores": cpu,
        "tui_cpu_cores": tui_cpu,
        "steps_during": (st.get("step", 0) or 0) - (step0 or 0),
        "state_after": st.get("state"),
        "wall_s": wall,
    }


def report(m: dict, how: str) -> dict:
    res = m["results"]
    ok = [r for r in res if not r["timeout"]]
    first = stats([r["first_ms"] for r in ok])
    end = stats([r["end_ms"] for r in ok])
    mark = stats([r["marker_ms"] for r in ok])
    by_view = {
        name: stats([r["first_ms"] for r in ok if r["marker"] == marker])
        for name, marker in (("open_help", OPEN_MARKER), ("close_help", CLOSE_MARKER))
    }
    timeouts = len(res) - len(ok)
    preceded = sum(1 for r in ok if r["preceded"])
    merged = sum(1 for r in ok if r["merged"])
    # A press that timed out counts as the timeout for the target: it was not answered.
    worst = [r["first_ms"] for r in ok] + [ANSWER_TIMEOUT_S * 1000] * timeouts
    p95 = pct(worst, 95) if worst else float("inf")
    cpu, tui_cpu = m["trainer_cpu_cores"], m["tui_cpu_cores"]
    print(f"launcher: {how}; {len(res)} presses in {m['wall_s']:.1f} s")
    print(
        f"training meanwhile: {m['steps_during']} steps, trainer used "
        f"{'?' if cpu is None else f'{cpu:.2f}'} of {os.cpu_count()} cores, "
        f"the TUI {'?' if tui_cpu is None else f'{tui_cpu:.2f}'}, "
        f"load average {os.getloadavg()[0]:.2f}; state after: {m['state_after']}"
    )
    print(
        f"background refresh: {m['idle_burst_rate']:.1f} bursts/s with no key pressed "
        f"({m['idle_bursts_with_marker']} with a marker text), "
        f"the TUI using {m['idle_tui_cpu_cores'] or 0:.2f} cores meanwhile"
    )
    print(f"key -> first byte of the answer: {fmt(first)}")
    print(f"key -> end of the answer burst:  {fmt(end)}")
    print(f"key -> chunk with the view's text: {fmt(mark)}")
    for name, s in by_view.items():
        print(f"  {name:10} first byte {fmt(s)}")
    print(
        f"timeouts: {timeouts}; a refresh burst came before the answer: {preceded}; "
        f"output just before the key (answer may have merged with it): {merged}"
    )
    met = p95 <= TARGET_P95_MS
    print(
        f"target key -> screen updated p95 <= {TARGET_P95_MS:.0f} ms: {p95:.1f} ms "
        f"{'MET' if met else 'MISSED'}"
    )
    copied = ("idle_burst_rate", "idle_bursts_with_marker", "idle_tui_cpu_cores")
    copied += ("trainer_cpu_cores", "tui_cpu_cores", "steps_during")
    return {
        **{k: m[k] for k in copied},
        "launcher": how,
        "presses": len(res),
        "first_byte_ms": first,
        "burst_end_ms": end,
        "marker_chunk_ms": mark,
        "by_view_first_byte_ms": by_view,
        "p95_ms_with_timeouts": p95,
        "timeouts": timeouts,
        "preceded_by_refresh": preceded,
        "merged_with_other_output": merged,
        "target_p95_le_100ms": met,
        "first_byte_all_ms": [r.get("first_ms") for r in res],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presses", type=int, default=60, help="key presses to time (>= 50)")
    ap.add_argument("--max-steps", type=int, default=400, help="steps of the background run")
    ap.add_argument("--idle", type=float, default=5.0, help="seconds of no key, for the refresh")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds after the screen shows")
    ap.add_argument("--launcher", choices=("auto", "open", "python"), default="auto")
    ap.add_argument("--show-idle", action="store_true", help="print each background burst")
    args = ap.parse_args()
    if not Path(SPARK_TUI).exists():
        raise SystemExit(f"{SPARK_TUI} missing: run `make setup` first")
    tmp = Path(tempfile.mkdtemp(prefix="spark-bench-ui-"))
    home = tmp / "spark-home"
    env = dict(os.environ, SPARK_TUI_HOME=str(home), TERM="xterm-256color")
    env.update(COLUMNS=str(COLS), LINES=str(ROWS), OMP_WAIT_POLICY="PASSIVE")
    for key in ("TMUX", "STY", "NO_COLOR"):
        env.pop(key, None)
    os.environ["SPARK_TUI_HOME"] = str(home)
    term = None
    how = args.launcher
    try:
        t0 = time.time()
        run = start_training(env, home, args.max_steps)
        st = wait_training(run)
        print(f"run {run.id} training (pid {st.get('pid')}) after {time.time() - t0:.0f} s")
        argv = tui_argv(how, run, env, tmp)
        how = "open" if argv[1:2] == ["open"] else "python"
        print(f"TUI: {' '.join(argv)}", flush=True)
        term = Terminal(*spawn_pty(argv, env, COLS, ROWS))
        m = measure(term, run, args.presses, args.idle, args.settle, args.show_idle)
        result = report(m, how)
    finally:
        stop_everything(home, term, env)
        shutil.rmtree(tmp, ignore_errors=True)
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
