"""The trainer's parent for its whole life: it waits for it and records how it ended.

`process.start_training` runs `python -m spark_tui.core.train.supervise RUN_DIR -- CMD…`
through a launcher that exits at once, so this supervisor belongs to no terminal
and no TUI.  It starts the trainer in a session of its own (a Kill of the
trainer's process group does not reach the supervisor), writes the trainer's
pid and start time into status.json right away, prints the pid for the caller,
then waits.  While it waits it samples the trainer's memory; when the trainer
is gone it writes the exit code or signal into status.json and, if the trainer
could not write a final state itself (SIGKILL, a segfault, the OOM killer),
says why the run died: "killed by the kernel, most likely out of memory" when
the cgroup's `oom_kill` count rose or the trainer was SIGKILLed while it held
most of the memory, with the Memory step's suggestions.

No torch here: the supervisor is a few megabytes for as long as the run lasts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spark_tui.core.base.atomic import read_json
from spark_tui.core.base.names import FINAL_STATES, KILL_FILE
from spark_tui.core.train.runs import Run, proc_start_time

SAMPLE_INTERVAL_S = 0.5
# A SIGKILL while the trainer held this share of the machine's memory (or while the
# machine had less than LOW_AVAILABLE of it left) is taken for the OOM killer.
HIGH_RSS_SHARE = 0.5
LOW_AVAILABLE_SHARE = 0.05


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts:
                    out[key] = int(parts[0]) * 1024
    except (OSError, ValueError):
        pass
    return out


def _rss(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_events(pid: int) -> Path | None:
    """The cgroup v2 `memory.events` file of `pid`, when the machine has one readable."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("0::"):
                    path = Path("/sys/fs/cgroup") / line[3:].strip().lstrip("/") / "memory.events"
                    return path if path.is_file() else None
    except OSError:
        pass
    return None


def oom_kills(events: Path | None) -> int | None:
    """The `oom_kill` count of a cgroup's memory.events, or None when unreadable."""
    if events is None:
        return None
    try:
        for line in events.read_text(encoding="ascii").splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass
    return None


@dataclass
class Watch:
    """What the supervisor saw of the trainer while it ran."""

    peak_rss: int = 0
    last_rss: int | None = None
    last_available: int | None = None
    total_memory: int | None = None
    oom_kills_before: int | None = None
    oom_kills_after: int | None = None

    def sample(self, pid: int) -> None:
        rss = _rss(pid)
        if rss is not None:
            self.last_rss = rss
            self.peak_rss = max(self.peak_rss, rss)
        info = _meminfo()
        self.total_memory = info.get("MemTotal", self.total_memory)
        self.last_available = info.get("MemAvailable", self.last_available)

    def high_memory(self) -> bool:
        total = self.total_memory or 0
        if total <= 0:
            return False
        held = max(self.peak_rss, self.last_rss or 0)
        low = self.last_available is not None and self.last_available < LOW_AVAILABLE_SHARE * total
        return held >= HIGH_RSS_SHARE * total or low


def exit_fields(returncode: int) -> dict[str, Any]:
    """status.json's record of how the process ended: its exit code, or the signal."""
    if returncode >= 0:
        return {"exit_code": returncode, "exit_signal": None}
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return {"exit_code": None, "exit_signal": -returncode, "exit_signal_name": name}


def explain_death(
    returncode: int, watch: Watch, cfg: Any | None, *, kill_asked: bool = False
) -> dict[str, Any]:
    """The `died` status fields for a trainer that ended without writing a final state."""
    fields: dict[str, Any] = {"state": "died", **exit_fields(returncode)}
    gb = f"{watch.peak_rss / 1e9:.1f} GB" if watch.peak_rss else "an unknown amount"
    oom_rose = (
        watch.oom_kills_before is not None
        and watch.oom_kills_after is not None
        and watch.oom_kills_after > watch.oom_kills_before
    )
    if returncode == -signal.SIGKILL and kill_asked:
        fields["error"] = "killed with Kill (SIGKILL): progress since the last checkpoint is lost"
        fields["advice"] = ["Resume continues from the last complete checkpoint"]
    elif oom_rose or (returncode == -signal.SIGKILL and watch.high_memory()):
        from spark_tui.core.train.advice import oom_advice

        _, advice = oom_advice(cfg)
        why = "the cgroup's oom_kill count rose" if oom_rose else f"it held {gb} at the end"
        fields["error"] = f"killed by the kernel, most likely out of memory ({why}; SIGKILL)"
        fields["advice"] = advice
        fields["oom"] = True
    elif returncode < 0:
        name = fields["exit_signal_name"]
        fields["error"] = (
            f"the training process was ended by {name} (signal {-returncode}) "
            "before it could save (see train.log)"
        )
    else:
        fields["error"] = (
            f"the training process exited with code {returncode} without a final state "
            "(see train.log)"
        )
    fields["advice"] = fields.get("advice") or [
        "Resume continues from the last complete checkpoint"
    ]
    return fields


def supervise(run: Run, cmd: list[str], log_path: Path) -> int:
    """Start `cmd` (the trainer), record its pid, wait, record how it ended; its exit code."""
    log = open(log_path, "ab", buffering=0)  # noqa: SIM115 - held until the trainer ends
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        close_fds=True,
    )
    started = proc_start_time(proc.pid)
    run.write_status(pid=proc.pid, pid_start=started, supervisor_pid=os.getpid())
    sys.stdout.write(str(proc.pid))
    sys.stdout.flush()
    # Let go of the caller's pipe (it reads until end of file) and of any terminal.
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)

    watch = Watch()
    events = _cgroup_events(proc.pid)
    watch.oom_kills_before = oom_kills(events)
    while proc.poll() is None:
        watch.sample(proc.pid)
        time.sleep(SAMPLE_INTERVAL_S)
    rc = proc.returncode
    watch.oom_kills_after = oom_kills(events)
    record(run, proc.pid, rc, watch)
    return 0


def record(run: Run, pid: int, returncode: int, watch: Watch) -> dict[str, Any]:
    """Write how trainer `pid` ended into status.json (never over another trainer's status)."""
    st = read_json(run.status_path, default=None) or {}
    # Under `accelerate launch` the child is the launcher and rank 0 writes its own pid.
    if st.get("pid") not in (None, pid) and st.get("launcher_pid") != pid:
        return st  # a second trainer refused by the lock: the first one owns the status
    if st.get("supervisor_pid") not in (None, os.getpid()):
        return st  # a newer session of this run owns the status now
    peak = {"peak_rss_bytes": watch.peak_rss} if watch.peak_rss else {}
    kill_asked = (run.path / KILL_FILE).exists()
    failure = None if kill_asked else _rank_failure(run, returncode)
    if failure is not None and (st.get("state") not in FINAL_STATES or failure["failed_rank"]):
        # Another rank's death shows on rank 0 as a broken connection: name the first one.
        return run.write_status(**failure, **exit_fields(returncode), **peak,
                                finished=time.time(), phase="done", eta_s=None)  # fmt: skip
    if st.get("state") in FINAL_STATES:
        return run.write_status(**exit_fields(returncode), **peak)
    if st.get("machine_rank") and returncode == 0:  # machine 1..: rank 0 is elsewhere
        return run.write_status(state="finished", phase="done", finished=time.time(),
                                summary={"note": "this machine's ranks ended normally; "
                                         "machine 0's run folder has the result"},
                                **exit_fields(returncode), **peak)  # fmt: skip
    cfg = None
    try:
        cfg = run.config()
    except Exception:  # noqa: BLE001 - the advice is optional, the record is not
        pass
    kill_file = run.path / KILL_FILE
    # A launcher whose rank 0 was killed by Kill exits with 1 itself: the kill is rank 0's.
    how = -signal.SIGKILL if kill_asked and st.get("launcher_pid") == pid else returncode
    fields = {**explain_death(how, watch, cfg, kill_asked=kill_asked), **exit_fields(returncode)}
    with contextlib.suppress(FileNotFoundError):
        kill_file.unlink()
    return run.write_status(**fields, **peak, finished=time.time(), phase="done", eta_s=None)


def _rank_failure(run: Run, returncode: int) -> dict[str, Any] | None:
    """The failed fields naming the rank that brought a launched run down, if one did."""
    if returncode == 0:
        return None
    from spark_tui.core.train.launch import rank_failure_fields, root_cause

    try:
        with open(run.log_path, "rb") as fh:
            fh.seek(max(0, run.log_path.stat().st_size - 256 * 1024))
            tail = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    failure = root_cause(tail)
    return rank_failure_fields(run, failure) if failure is not None else None


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 4 or args[2] != "--":
        print(
            "usage: python -m spark_tui.core.train.supervise RUN_DIR LOG -- CMD…", file=sys.stderr
        )
        return 2
    run = Run(Path(args[0]).resolve())
    return supervise(run, args[3:], Path(args[1]))


if __name__ == "__main__":
    sys.exit(main())
