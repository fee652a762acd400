"""How fast does the wizard open?  The real `spark-tui` in a pseudo-terminal, against a stopwatch.

    .venv/bin/python bench/startup.py [--rounds 5]
    .venv/bin/python bench/startup.py --importtime      # what the start imports, slowest first

Each round starts `.venv/bin/spark-tui` on an 80x24 pseudo-terminal (TERM=xterm-256color,
a temporary HOME / XDG folders / SPARK_TUI_HOME, so no user state is read or written) and
times, from the moment before the fork:

- first paint: the terminal output contains text only the welcome screen draws;
- first key:   right after the first paint we type `?` (Help) and wait for text only
  the help panel draws.  That is process start -> first key handled.

Then ctrl+q, and a kill if the app is still alive after a few seconds.  Next to each start,
alternating, a fresh `python -c "import torch, transformers"` on the same interpreter: what
a start that imported the heavy libraries up front would cost at least.

Prints each round, median and min of each figure, first paint / import, one MET/MISSED line
per target (median first paint <= 1.0 s and <= 20 % of the import; median first key <= 1.0 s)
and, last, `RESULT {json}` for scripts.  The machine may be shared: read the min as the
least-disturbed figure.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import re
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
SPARK_TUI = str(VENV_BIN / "spark-tui")

COLS, ROWS = 80, 24
# Text that sits inside one styled segment of the view it proves is on screen.
WELCOME_MARKER = "pile of examples"  # screens/welcome.py TAGLINE
HELP_KEY = b"?"  # welcome.py binds f1,question_mark to app.help
HELP_MARKER = "Close (Esc)"  # screens/help.py: the close button's label
QUIT_KEY = b"\x11"  # ctrl+q
TIMEOUT_S = 60.0

_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, modes
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: title, clipboard
    r"|\x1b[PX^_][^\x1b]*\x1b\\"  # DCS and friends
    r"|\x1b[@-Z\\-_()*+][0-9A-Za-z]?"  # two- or three-byte escapes
)


def strip_ansi(data: bytes) -> str:
    """The printable text of terminal output (escape sequences removed)."""
    return _ANSI.sub("", data.decode("utf-8", errors="replace"))


def bench_env(tmp: Path) -> dict[str, str]:
    """The environment of every child: a fresh home, a fixed terminal, no user state."""
    env = dict(os.environ)
    for key in ("TMUX", "STY", "TEXTUAL", "NO_COLOR"):
        env.pop(key, None)
    env.update(
        HOME=str(tmp / "home"),
        XDG_DATA_HOME=str(tmp / "xdg-data"),
        XDG_CACHE_HOME=str(tmp / "xdg-cache"),
        XDG_CONFIG_HOME=str(tmp / "xdg-config"),
        XDG_STATE_HOME=str(tmp / "xdg-state"),
        SPARK_TUI_HOME=str(tmp / "spark-home"),
        SPARK_TUI_CACHE=str(tmp / "spark-cache"),
        TERM="xterm-256color",
        COLORTERM="truecolor",
        COLUMNS=str(COLS),
        LINES=str(ROWS),
        PYTHONDONTWRITEBYTECODE="1",
    )
    for key in ("HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    return env


def spawn_pty(argv: list[str], env: dict[str, str], cols: int, rows: int) -> tuple[int, int]:
    """Fork `argv` on a new pseudo-terminal of cols x rows; returns (pid, master fd)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: size its terminal before anything reads it, then exec
        try:
            winsize = struct.pack("HHHH", rows, cols, 0, 0)
            fcntl.ioctl(sys.stdin.fileno(), termios.TIOCSWINSZ, winsize)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    return pid, fd


def read_until(fd: int, marker: str, deadline: float, sink: bytearray) -> float | None:
    """Read the pty until the text since this call contains `marker`; the arrival time or None."""
    seen = bytearray()
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed its terminal
            return None
        now = time.perf_counter()
        if not chunk:
            return None
        seen += chunk
        sink += chunk
        if marker in strip_ansi(bytes(seen)):
            return now


def drain(fd: int, seconds: float, sink: bytearray) -> None:
    end = time.perf_counter() + seconds
    while (left := end - time.perf_counter()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            sink += chunk


def end_child(pid: int, fd: int, sink: bytearray, grace: float = 5.0) -> float | None:
    """ctrl+q, then SIGTERM / SIGKILL if still alive.  Seconds the quit took, None if killed."""
    t0 = time.perf_counter()
    try:
        os.write(fd, QUIT_KEY)
    except OSError:
        pass
    took: float | None = None
    end = t0 + grace
    while time.perf_counter() < end:
        if os.waitpid(pid, os.WNOHANG)[0]:
            took = time.perf_counter() - t0
            break
        drain(fd, 0.02, sink)
    else:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if reap(pid, sig, 2.0):
                break
    os.close(fd)
    return took


def reap(pid: int, sig: int, wait_s: float) -> bool:
    """Send `sig` and wait up to `wait_s` for the child to end; True once it has."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    end = time.perf_counter() + wait_s
    while time.perf_counter() < end:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return True
        except ChildProcessError:
            return True
        time.sleep(0.02)
    return False


def one_start(env: dict[str, str]) -> dict[str, float | None]:
    """One start of the real binary: seconds to first paint, to first key handled, to quit."""
    sink = bytearray()
    t0 = time.perf_counter()
    pid, fd = spawn_pty([SPARK_TUI], env, COLS, ROWS)
    paint = key = quit_s = None
    try:
        t_paint = read_until(fd, WELCOME_MARKER, t0 + TIMEOUT_S, sink)
        if t_paint is not None:
            paint = t_paint - t0
            os.write(fd, HELP_KEY)
            t_key = read_until(fd, HELP_MARKER, t_paint + TIMEOUT_S, sink)
            key = None if t_key is None else t_key - t0
    finally:
        quit_s = end_child(pid, fd, sink)
    if paint is None or key is None:
        tail = strip_ansi(bytes(sink[-3000:]))
        missing = WELCOME_MARKER if paint is None else HELP_MARKER
        raise SystemExit(f"never saw {missing!r} within {TIMEOUT_S:.0f} s; output ended:\n{tail}")
    return {"first_paint_s": paint, "first_key_s": key, "quit_s": quit_s}


def time_import(env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [PYTHON, "-c", "import torch, transformers"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


# What `spark-tui` with no command imports before the welcome screen draws: cli.main (which,
# without arguments, skips building the subcommand parser), the app, on mount the welcome screen.
START_IMPORTS = "import spark_tui.cli; import spark_tui.app, spark_tui.screens.welcome"


def importtime(env: dict[str, str], top: int = 25) -> list[dict[str, object]]:
    """`python -X importtime` over the start path; the `top` slowest by cumulative time."""
    proc = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", START_IMPORTS],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    rows: list[tuple[str, float, float, int]] = []  # module, self ms, cumulative ms, depth
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            us_self, us_cum = int(m.group(1)), int(m.group(2))
            rows.append((m.group(4), us_self / 1000, us_cum / 1000, len(m.group(3)) // 2))
    total = sum(cum for _, _, cum, depth in rows if depth == 0)
    slow = sorted(rows, key=lambda r: -r[2])[:top]
    print(f"-X importtime of: {START_IMPORTS}")
    print(f"{len(rows)} modules, {total:.0f} ms in all (top-level cumulative sum)")
    print(f"{'cumulative':>11} {'self':>8}  module (indent = import depth)")
    for module, self_ms, cum, depth in slow:
        print(f"{cum:>9.1f}ms {self_ms:>6.1f}ms  {'  ' * min(depth, 8)}{module}")
    heavy = [r[0] for r in rows if r[0].split(".")[0] in ("torch", "transformers")]
    print(f"torch/transformers modules imported at start: {len(heavy)}")
    return [{"module": r[0], "self_ms": r[1], "cumulative_ms": r[2], "depth": r[3]} for r in slow]


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="starts (and imports) to time")
    ap.add_argument(
        "--importtime", action="store_true", help="list the slowest imports of the start path"
    )
    args = ap.parse_args()
    if not Path(SPARK_TUI).exists():
        raise SystemExit(f"{SPARK_TUI} missing: run `make setup` first")
    tmp = Path(tempfile.mkdtemp(prefix="spark-bench-startup-"))
    try:
        env = bench_env(tmp)
        if args.importtime:
            slow = importtime(env)
            print("RESULT " + json.dumps({"importtime_top": slow}))
            return 0
        return measure(env, args.rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(env: dict[str, str], rounds: int) -> int:
    print(f"{SPARK_TUI} on a {COLS}x{ROWS} pty, {rounds} rounds; import: {PYTHON}", flush=True)
    time_import(env)  # warm the page cache for both sides alike: neither pays a cold disk
    one_start(env)
    paints: list[float] = []
    keys: list[float] = []
    imports: list[float] = []
    quits: list[float] = []
    for i in range(rounds):
        order = ("tui", "import") if i % 2 == 0 else ("import", "tui")
        for side in order:
            if side == "tui":
                r = one_start(env)
                paints.append(float(r["first_paint_s"] or 0))
                keys.append(float(r["first_key_s"] or 0))
                if r["quit_s"] is not None:
                    quits.append(float(r["quit_s"]))
                q = f"{r['quit_s']:.2f} s" if r["quit_s"] is not None else "killed"
                print(
                    f"round {i + 1} tui:    first paint {paints[-1]:.3f} s, "
                    f"first key {keys[-1]:.3f} s, quit {q}",
                    flush=True,
                )
            else:
                imports.append(time_import(env))
                print(f"round {i + 1} import: torch+transformers {imports[-1]:.3f} s", flush=True)
    paint, key, imp = summary(paints), summary(keys), summary(imports)
    ratio = paint["median"] / imp["median"]
    print(f"first paint        median {paint['median']:.3f} s  min {paint['min']:.3f} s")
    print(f"first key handled  median {key['median']:.3f} s  min {key['min']:.3f} s")
    print(f"import torch+transformers median {imp['median']:.3f} s  min {imp['min']:.3f} s")
    print(f"first paint / import = {ratio:.1%} (min/min {paint['min'] / imp['min']:.1%})")
    if quits:
        print(f"ctrl+q -> exit     median {statistics.median(quits):.3f} s")
    targets = {
        "first_paint_le_1s": paint["median"] <= 1.0,
        "first_paint_le_20pct_import": ratio <= 0.20,
        "first_key_le_1s": key["median"] <= 1.0,
    }
    print(
        f"target first paint <= 1.0 s: {paint['median']:.3f} s "
        f"{verdict(targets['first_paint_le_1s'])}"
    )
    print(
        f"target first paint <= 20 % of torch+transformers import: {ratio:.1%} "
        f"{verdict(targets['first_paint_le_20pct_import'])}"
    )
    print(f"target first key <= 1.0 s: {key['median']:.3f} s {verdict(targets['first_key_le_1s'])}")
    result = {
        "rounds": rounds,
        "first_paint_s": {**paint, "all": paints},
        "first_key_s": {**key, "all": keys},
        "import_s": {**imp, "all": imports},
        "quit_s": quits,
        "paint_over_import": ratio,
        "targets": targets,
    }
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
