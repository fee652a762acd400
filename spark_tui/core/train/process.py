"""Start, stop, kill, resume and follow detached training processes.

Training never runs inside the TUI or the CLI: `start_training` launches
`python -m spark_tui.core.train.entry RUN_DIR` in a new session (so closing
the terminal or the app leaves it running) under a supervisor (`supervise.py`)
that waits for it and records its exit code or signal in status.json; a
short-lived launcher starts the supervisor, so neither is left as our zombie.
Everyone else only reads the run folder: `RunFollower` tails `status.json`, `metrics.jsonl` and `train.log` by
byte offsets and yields what is new — the CLI's `train`/`attach` and the TUI's
worker use the same class, so re-attaching is the same code path as following
a fresh run.

This module must stay free of torch/transformers (the TUI imports it early).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spark_tui.core.base.atomic import read_json
from spark_tui.core.base.env import child_env
from spark_tui.core.base.names import ACTIVE_STATES, FINAL_STATES, KILL_FILE, STOP_FILE
from spark_tui.core.train.runs import (
    Run,
    RunError,
    is_locked,
    pid_alive,
    resolve_run,
)

LOG_TAIL_BYTES = 64 * 1024

# Starts the supervisor in a session of its own and exits: the supervisor prints the
# trainer's pid on the pipe it inherits, then lets go of it.
_LAUNCHER = r"""
import subprocess, sys
subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True)
"""


def _as_run(run: Run | str | Path) -> Run:
    if isinstance(run, Run):
        return run
    return resolve_run(run)


@dataclass
class TrainingHandle:
    """What `start_training` returns: the run and the trainer's pid."""

    run: Run
    pid: int


def trainer_command(run: Run, *, resume: bool = False, python: str | None = None) -> list[str]:
    cmd = [python or sys.executable, "-m", "spark_tui.core.train.entry", str(run.path)]
    if resume:
        cmd.append("--resume")
    return cmd


def start_training(
    run: Run | str | Path,
    *,
    resume: bool = False,
    python: str | None = None,
    env: dict[str, str] | None = None,
    machine_rank: int | None = None,
) -> TrainingHandle:
    """Launch the detached trainer for `run`; returns at once with its pid.

    A run with a `[distributed]` strategy starts through `accelerate launch` instead
    (`launch.py`: this machine's share of the ranks; `machine_rank` overrides run.toml's).

    Raises RunError if another trainer holds the run.  status.json is set to
    "preparing" before the launch, so a follower started right after sees a
    live run even before the new process writes its own status.
    """
    run = _as_run(run)
    if not run.config_path.exists():
        raise RunError(f"{run.path} has no run.toml; create the run first")
    # Bad settings, moved files, a model folder without weights: refused here, before
    # anything is launched or written (a resume trains on the prepared copy of the data).
    # Imported here: the followers (the TUI's first screens) need none of it.
    from spark_tui.core.train.preflight import preflight

    cfg = run.config()
    preflight(cfg, source=run.config_path, prepared=run.data_dir if resume else None)
    from spark_tui.core.train import launch

    cmd = trainer_command(run, resume=resume, python=python)
    if launch.is_distributed(cfg):
        launch.write_launch_config(run, cfg)
        cmd = launch.launcher_command(run, cfg, machine_rank=machine_rank, resume=resume)
    busy = f"run {run.id} is already training; `spark-tui attach {run.id}` follows it"
    # Alive (or being launched) by its status: its trainer may not hold the lock yet.
    if run.status().get("state") in ACTIVE_STATES:
        raise RunError(busy)
    # A trainer that was just killed can hold its lock a moment longer than it shows
    # as dead (its threads are still being torn down): wait for that.
    if is_locked(run) and not _wait_unlocked(run, 15.0):
        raise RunError(busy)
    # The last session's supervisor records how its process ended once it has exited; a
    # launcher exits some seconds after rank 0 wrote the final state (the other ranks end).
    _wait_supervisor_gone(run, 60.0)
    for stale in (STOP_FILE, KILL_FILE):
        with contextlib.suppress(FileNotFoundError):
            (run.path / stale).unlink()
    run.write_status(
        state="preparing",
        phase="launching",
        pid=None,
        pid_start=None,
        supervisor_pid=None,
        exit_code=None,
        exit_signal=None,
        exit_signal_name=None,
        stalled=None,
        heartbeat=time.time(),
        error=None,
        advice=None,
        eta_s=None,
        finished=None,
        **({} if resume else {"step": 0, "total_steps": 0}),
        # Machines 1.. of a launched run: their ranks write no status; machine 0's folder has it.
        machine_rank=machine_rank or None,
    )
    run.log_path.touch()
    full_env = child_env(env)  # the training process's defaults (core/base/env.py)
    # Make sure the child imports this very package even when run from a checkout.
    pkg_root = str(Path(__file__).resolve().parents[3])  # the folder holding spark_tui/
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (pkg_root, full_env.get("PYTHONPATH", "")) if p
    )
    supervisor = [
        python or sys.executable,
        "-m",
        "spark_tui.core.train.supervise",
        str(run.path),
        str(run.log_path),
        "--",
        *cmd,
    ]
    launcher = [python or sys.executable, "-c", _LAUNCHER, *supervisor]
    said = b""
    try:
        out = subprocess.run(
            launcher,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=full_env,
            cwd=str(run.path),
            timeout=60,
            check=True,
        )
        said = out.stderr
        pid = int(out.stdout.decode().strip())
    except (subprocess.SubprocessError, ValueError, OSError) as exc:
        said = getattr(exc, "stderr", None) or said
        lines = (said or b"").decode(errors="replace").strip().splitlines()
        why = lines[-1] if lines else str(exc)
        run.write_status(state="failed", error=f"could not start the training process: {why}")
        raise RunError(f"could not start the training process for {run.id}: {why}") from exc
    return TrainingHandle(run=run, pid=pid)


def resume_training(run: Run | str | Path, **kwargs: Any) -> TrainingHandle:
    """Continue a stopped, died or failed run from its newest complete checkpoint."""
    run = _as_run(run)
    st = run.status()
    if st.get("state") in ACTIVE_STATES:
        raise RunError(f"run {run.id} is still {st['state']}; stop it first or attach to it")
    if st.get("state") == "finished":
        raise RunError(f"run {run.id} has finished; start a new run to train more")
    return start_training(run, resume=True, **kwargs)


def _trainer_status(run: Run, wait_s: float = 10.0) -> dict[str, Any]:
    """The raw status, waiting briefly for a just-launched trainer to write its pid."""
    deadline = time.time() + wait_s
    while True:
        st = read_json(run.status_path, default=None) or {}
        if st.get("pid") or st.get("state") != "preparing" or time.time() >= deadline:
            return st
        if time.time() - float(st.get("updated", 0)) > wait_s:  # a stale launch, not a live one
            return st
        time.sleep(0.1)


def _signal_trainer(run: Run, sig: int, *, group: bool) -> bool:
    st = _trainer_status(run)
    pid = st.get("pid")
    if not pid or not pid_alive(int(pid), st.get("pid_start")):
        return False
    try:
        if group:
            os.killpg(os.getpgid(int(pid)), sig)
        else:
            os.kill(int(pid), sig)
    except ProcessLookupError:
        return False
    return True


def stop_training(run: Run | str | Path) -> bool:
    """Ask the trainer to stop gracefully (finish the step, checkpoint, save, state "stopped").

    Returns False if no trainer was running.  Does not wait; follow the run to see it end.
    """
    run = _as_run(run)
    st = run.status()
    if st.get("state") not in ACTIVE_STATES:
        return False
    (run.path / STOP_FILE).write_text(f"{time.time()}\n", encoding="utf-8")
    _signal_trainer(run, signal.SIGTERM, group=False)
    return True


def kill_training(run: Run | str | Path) -> bool:
    """SIGKILL the trainer's process group at once (no checkpoint; the run shows as "died")."""
    run = _as_run(run)
    st = _trainer_status(run)
    pid = st.get("pid")
    if pid and pid_alive(int(pid), st.get("pid_start")):
        # Tells the supervisor that this SIGKILL was asked for (not the OOM killer).
        (run.path / KILL_FILE).write_text(f"{time.time()}\n", encoding="utf-8")
    killed = _signal_trainer(run, signal.SIGKILL, group=True)
    if killed and pid:
        deadline = time.time() + 10
        while time.time() < deadline and pid_alive(int(pid), st.get("pid_start")):
            time.sleep(0.05)
        _wait_unlocked(run, max(0.0, deadline - time.time()))
        # The supervisor records the signal a moment later; wait for it when there is one.
        end = time.time() + 3
        while st.get("supervisor_pid") and time.time() < end:
            if run.status().get("exit_signal"):
                break
            time.sleep(0.05)
    return killed


def _wait_supervisor_gone(run: Run, timeout: float) -> None:
    pid = run.status().get("supervisor_pid")
    deadline = time.time() + timeout
    while pid and pid_alive(int(pid), None) and time.time() < deadline:
        time.sleep(0.1)


def _wait_unlocked(run: Run, timeout: float) -> bool:
    """Wait until no process holds the run's lock; True if it is free."""
    deadline = time.time() + timeout
    while is_locked(run):
        if time.time() >= deadline:
            return False
        time.sleep(0.1)
    return True


def settled(st: dict[str, Any]) -> bool:
    """A final state that will not change again.

    A launched run's rank 0 writes its final state before the launcher has ended the other
    ranks; when one of them died first, the supervisor then names it.  So the state is
    final only once the supervisor recorded the launcher's exit (or is gone).
    """
    if st.get("state") not in FINAL_STATES:
        return False
    if not st.get("launcher_pid"):
        return True
    if st.get("exit_code") is not None or st.get("exit_signal") is not None:
        return True
    sup = st.get("supervisor_pid")
    return not (sup and pid_alive(int(sup), None))


def wait(run: Run | str | Path, timeout: float | None = None, poll: float = 0.5) -> dict[str, Any]:
    """Block until the run reaches a final state (or the timeout); returns its status."""
    run = _as_run(run)
    deadline = None if timeout is None else time.time() + timeout
    while True:
        st = run.status()
        if settled(st):
            return st
        if deadline is not None and time.time() > deadline:
            return st
        time.sleep(poll)


# --------------------------------------------------------------------------- following


@dataclass
class FollowUpdate:
    """What changed in a run folder since the previous poll."""

    status: dict[str, Any]
    metrics: list[dict[str, Any]] = field(default_factory=list)  # new lines only
    log: str = ""  # new text of train.log
    reset: bool = False  # metrics.jsonl was rewritten (resume): `metrics` holds all lines
    done: bool = False  # the run is in a final state and everything was read

    @property
    def state(self) -> str:
        return str(self.status.get("state", "new"))

    @property
    def changed(self) -> bool:
        return bool(self.metrics or self.log or self.reset or self.done)


class _Tail:
    """Incremental reader of one growing file (byte offset; survives truncation/replacement)."""

    def __init__(self, path: Path, start_at_end_minus: int | None = None) -> None:
        self.path = path
        self.offset = 0
        self.inode: int | None = None
        self.partial = b""
        self.start_at_end_minus = start_at_end_minus

    def read(self) -> tuple[bytes, bool]:
        """(new complete-line bytes, reset?)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return b"", False
        reset = False
        if self.inode is None:
            self.inode = st.st_ino
            if self.start_at_end_minus is not None and st.st_size > self.start_at_end_minus:
                self.offset = st.st_size - self.start_at_end_minus
        elif st.st_ino != self.inode or st.st_size < self.offset:
            self.inode = st.st_ino
            self.offset = 0
            self.partial = b""
            reset = True
        if st.st_size == self.offset:
            return b"", reset
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        self.offset += len(data)
        data = self.partial + data
        cut = data.rfind(b"\n")
        if cut < 0:
            self.partial = data
            return b"", reset
        self.partial = data[cut + 1 :]
        return data[: cut + 1], reset


class RunFollower:
    """Follow a run folder: iterate to get `FollowUpdate`s until the run ends.

    >>> for up in RunFollower(run):          # blocks between polls
    ...     chart.extend(up.metrics)         # up.reset: replace instead of extend
    ...     log_pane.write(up.log)

    `poll()` is the non-blocking step the TUI's worker calls on its own clock.
    The first update carries every metrics line so far (the whole curve) and the
    last `log_tail_bytes` of train.log.  Iteration ends after the update that
    sees a final state (finished, stopped, failed, died) — or, with
    `stop_when_done=False`, only when `close()` is called.
    """

    def __init__(
        self,
        run: Run | str | Path,
        *,
        interval: float = 0.5,
        log_tail_bytes: int = LOG_TAIL_BYTES,
        stop_when_done: bool = True,
        timeout: float | None = None,
    ) -> None:
        self.run = _as_run(run)
        self.interval = interval
        self.stop_when_done = stop_when_done
        self.timeout = timeout
        self._metrics = _Tail(self.run.metrics_path)
        self._log = _Tail(self.run.log_path, start_at_end_minus=log_tail_bytes)
        self._closed = False
        self._last_status: dict[str, Any] = {}
        self.metrics: list[dict[str, Any]] = []  # every metrics line seen (after resets)

    def close(self) -> None:
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def poll(self) -> FollowUpdate:
        # Status first: if it says final, the files read after it are complete.
        st = self.run.status()
        raw, reset = self._metrics.read()
        new: list[dict[str, Any]] = []
        for line in raw.decode("utf-8", errors="replace").splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                new.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        if reset:
            self.metrics = list(new)
        else:
            self.metrics.extend(new)
        log_bytes, _ = self._log.read()
        self._last_status = st
        done = settled(st)
        return FollowUpdate(
            status=st,
            metrics=new,
            log=log_bytes.decode("utf-8", errors="replace"),
            reset=reset,
            done=done,
        )

    def __iter__(self) -> Iterator[FollowUpdate]:
        start = time.time()
        while not self._closed:
            up = self.poll()
            yield up
            if up.done and self.stop_when_done:
                return
            if self.timeout is not None and time.time() - start > self.timeout:
                return
            # Sleep in short slices so close() from another thread is honoured quickly.
            end = time.time() + self.interval
            while not self._closed and time.time() < end:
                time.sleep(min(0.05, self.interval))

    @property
    def status(self) -> dict[str, Any]:
        return self._last_status
