"""Run folders: one folder per run holding its config, status, metrics, logs and outputs.

Layout (DESIGN.md §2)::

    <home>/runs/<run-id>/
        run.toml        the RunConfig
        status.json     state, pid, heartbeat, step/total, ETA, last error
        metrics.jsonl   one JSON object per logging step
        train.log       everything the libraries print, tracebacks included
        checkpoints/    trainer checkpoints (resume points)
        adapter/        the trained adapter (or model/ for full fine-tuning)
        data/           the prepared dataset and data_report.json

The TUI and the CLI only ever *read* these files to follow a run, so following a
fresh run and re-attaching after the terminal closed are the same code path.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spark_tui.config import ConfigError, RunConfig
from spark_tui.core.base import names, paths
from spark_tui.core.base.atomic import atomic_write_text, read_json
from spark_tui.core.base.errors import SparkError
from spark_tui.core.base.names import ACTIVE_STATES

# A run whose process is gone without a final state is "died".  One whose process
# is alive but silent is "stalled" (not final: it may come back, e.g. after SIGSTOP
# or a swap storm): no heartbeat for HEARTBEAT_STALE_S, or no new step for
# STALL_STEP_FACTOR × its usual step time (at least STALL_MIN_S).
# SPARK_TUI_STALL_S overrides both thresholds (the drills use a few seconds).
HEARTBEAT_STALE_S = 30.0
STALL_MIN_S = 180.0
STALL_STEP_FACTOR = 20.0
# A launch that never wrote a pid is given this long before it counts as died.
LAUNCH_STALE_S = 60.0
# How long a starting trainer keeps trying for its run's lock (a probe holds it for
# microseconds; a real second trainer holds it for the whole run).
TRAINER_LOCK_WAIT_S = 2.0


class RunError(SparkError):
    """A run folder that is missing, locked or unreadable; the message says what to do."""


@dataclass
class Run:
    """A handle on one run folder (cheap: reads files on demand)."""

    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / names.RUN_CONFIG

    @property
    def status_path(self) -> Path:
        return self.path / names.STATUS_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / names.METRICS_FILE

    @property
    def log_path(self) -> Path:
        return self.path / names.LOG_FILE

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / names.CHECKPOINTS_DIR

    @property
    def adapter_dir(self) -> Path:
        return self.path / names.ADAPTER_DIR

    @property
    def model_dir(self) -> Path:
        return self.path / names.MODEL_DIR

    @property
    def data_dir(self) -> Path:
        return self.path / names.DATA_DIR

    @property
    def output_dir(self) -> Path:
        """Where the trained weights are: adapter/ for PEFT runs, model/ for full fine-tuning."""
        return self.model_dir if self.model_dir.exists() else self.adapter_dir

    def config(self) -> RunConfig:
        return RunConfig.load(self.config_path)

    def status(self) -> dict[str, Any]:
        """The status with "died" (process gone) or "stalled" (alive, not moving) derived."""
        st = read_json(self.status_path, default=None) or {"state": "new"}
        if st.get("state") in ACTIVE_STATES:
            if not _alive(st):
                return {**st, "state": "died"}
            why = stalled(st)
            if why:
                return {**st, "state": "stalled", "stalled": why}
        return st

    def write_status(self, **changes: Any) -> dict[str, Any]:
        """Merge `changes` into status.json (the launcher's and the tests' way to set it)."""
        st = read_json(self.status_path, default=None) or {}
        st.update(changes)
        return self.save_status(st)

    def save_status(self, st: dict[str, Any], *, heartbeat: bool = False) -> dict[str, Any]:
        """The one writer of status.json: stamp `updated` (and `heartbeat`), replace durably.

        Atomic replace + fsync (`base.atomic`): readers never see half a file,
        and a power cut leaves the last status written, not an empty one.
        The trainer's `StatusWriter` writes through here too.
        """
        now = time.time()
        st["updated"] = now
        if heartbeat:
            st["heartbeat"] = now
        atomic_write_text(  # on a full disk, in place: the reason the run ended must land
            self.status_path,
            json.dumps(st, indent=2, sort_keys=True, default=str) + "\n",
            in_place_when_full=True,
        )
        return st

    def metrics(self) -> list[dict[str, Any]]:
        return read_metrics(self.metrics_path)

    def latest_checkpoint(self) -> Path | None:
        """The newest complete checkpoint (`checkpoints.checkpoint_problem` finds nothing)."""
        from spark_tui.core.train.checkpoints import latest_complete_checkpoint

        return latest_complete_checkpoint(self)[0]

    def summary(self) -> dict[str, Any]:
        """One line of `spark-tui runs`: id, state, step/total, first/last loss."""
        st = self.status()
        losses = [m["loss"] for m in self.metrics() if m.get("loss") is not None]
        try:
            cfg = self.config()
            model, objective, adapter = cfg.model.id, cfg.method.objective, cfg.method.adapter
        except ConfigError:
            model = objective = adapter = "?"
        return {
            "id": self.id,
            "path": str(self.path),
            "state": st.get("state", "new"),
            "step": st.get("step", 0),
            "total_steps": st.get("total_steps", 0),
            "first_loss": losses[0] if losses else None,
            "final_loss": losses[-1] if losses else None,
            "model": model,
            "objective": objective,
            "adapter": adapter,
            "created": st.get("created"),
            "error": st.get("error"),
        }


def read_metrics(path: Path, offset: int = 0) -> list[dict[str, Any]]:
    """Parse metrics.jsonl, skipping a torn last line that is still being written."""
    out: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8") as fh:
            fh.seek(offset)
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    except FileNotFoundError:
        pass
    return out


def proc_start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), or None if unknown.

    Stored next to the pid in status.json so a recycled pid is not mistaken for
    the trainer.
    """
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: int, start_time: int | None = None) -> bool:
    """True if `pid` runs (not a zombie) and, when given, started at `start_time`."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        if fields[0] in ("Z", "X"):  # exited, not yet reaped by its parent
            return False
        if start_time is not None and int(fields[19]) != int(start_time):
            return False  # the pid was recycled by another process
    except (OSError, ValueError, IndexError):
        pass
    return True


def _alive(st: dict[str, Any]) -> bool:
    pid = st.get("pid")
    if not pid:
        # Being set up by a process that has not written its pid yet.
        return time.time() - float(st.get("updated", 0)) < LAUNCH_STALE_S
    return pid_alive(int(pid), st.get("pid_start"))


def _stall_override() -> float | None:
    try:
        value = float(os.environ.get("SPARK_TUI_STALL_S", ""))
    except ValueError:
        return None
    return value if value > 0 else None


def stalled(st: dict[str, Any], now: float | None = None) -> str | None:
    """Why a live run counts as stalled (its heartbeat or its step stopped), or None."""
    if not st.get("pid"):
        return None
    now = time.time() if now is None else now
    override = _stall_override()
    hb = float(st.get("heartbeat", st.get("updated", 0)) or 0)
    silent = now - hb
    if silent > (override or HEARTBEAT_STALE_S):
        return (
            f"no heartbeat for {silent:.0f} s: the training process is suspended or frozen "
            "(SIGSTOP, a swap storm, a hung driver)"
        )
    last_step = st.get("last_step_at")
    if st.get("state") != "training" or not last_step:
        return None
    usual = float(st.get("step_time_s") or 0)
    # Before the first step is timed (warm-up, compilation) allow three times as long.
    limit = override or (max(STALL_MIN_S, STALL_STEP_FACTOR * usual) if usual else 3 * STALL_MIN_S)
    idle = now - float(last_step)
    if idle > limit:
        return f"step {st.get('step', 0)} has not moved for {idle:.0f} s" + (
            f" (a step usually takes {usual:.1f} s)" if usual else ""
        )
    return None


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-").lower()[:40] or "run"


def create_run(cfg: RunConfig, root: Path | None = None) -> Run:
    """Make a fresh run folder `<stamp>-<name>` and write run.toml into it."""
    root = Path(root) if root else paths.runs_dir()
    root.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    # A config copied from another run keeps that run's name: drop its timestamp.
    name = re.sub(r"^\d{8}-\d{6}-", "", cfg.name) if cfg.name else ""
    base = f"{stamp}-{_slug(name or _default_name(cfg))}"
    path = root / base
    n = 1
    while True:
        try:
            path.mkdir()
            break
        except FileExistsError:
            n += 1
            path = root / f"{base}-{n}"
    run = Run(path)
    if not cfg.name:
        cfg.name = path.name
    absolutize_paths(cfg)
    cfg.save(run.config_path)
    run.write_status(state="new", created=time.time(), step=0, total_steps=0)
    return run


def local_path(value: str) -> str | None:
    """`value` as an absolute path if it names a local file or folder, else None.

    A value is local when it exists on disk or is written as one (./ ../ / ~);
    "default", Hub ids ("org/name") and dataset ids that are not on disk are not.
    """
    if not value or value == "default":
        return None
    if value.startswith(("./", "../", "/", "~")) or os.path.exists(os.path.expanduser(value)):
        return os.path.abspath(os.path.expanduser(value))
    return None


def absolutize_paths(cfg: RunConfig) -> RunConfig:
    """Make the local model, data and validation paths absolute (in place).

    The trainer runs inside the run folder, so a path stored as typed
    ("mydata.jsonl") would no longer be found there.
    """
    for section, key in (("model", "id"), ("data", "path"), ("data", "validation_path")):
        obj = getattr(cfg, section)
        resolved = local_path(getattr(obj, key))
        if resolved is not None:
            setattr(obj, key, resolved)
    return cfg


def _default_name(cfg: RunConfig) -> str:
    model = Path(cfg.model.id).name if "/" in cfg.model.id else cfg.model.id
    return f"{model}-{cfg.method.objective}-{cfg.method.adapter}"


def resolve_run(ref: str | Path, root: Path | None = None) -> Run:
    """A run by folder path, exact id, or unique id prefix/suffix."""
    p = Path(ref).expanduser()
    if p.is_dir() and (p / names.RUN_CONFIG).exists():
        return Run(p.resolve())
    root = Path(root) if root else paths.runs_dir()
    direct = root / str(ref)
    if direct.is_dir():
        return Run(direct)
    matches = [d for d in list_run_dirs(root) if str(ref) in d.name]
    if len(matches) == 1:
        return Run(matches[0])
    if not matches:
        raise RunError(f"no run '{ref}' under {root}; `spark-tui runs` lists them")
    found = ", ".join(d.name for d in matches[:5])
    raise RunError(f"'{ref}' matches several runs ({found}); give more of the id")


def list_run_dirs(root: Path | None = None) -> list[Path]:
    root = Path(root) if root else paths.runs_dir()
    if not root.is_dir():
        return []
    return sorted(
        (d for d in root.iterdir() if d.is_dir() and (d / names.RUN_CONFIG).exists()),
        key=lambda d: d.name,
    )


def list_runs(root: Path | None = None) -> list[Run]:
    return [Run(d) for d in list_run_dirs(root)]


@dataclass
class RunLock:
    """An exclusive flock on `<run>/.lock` so two trainers never write the same run.

    flock is released by the kernel when the process dies, so a crashed trainer
    never leaves a stale lock behind.
    """

    run: Run
    _fh: Any = field(default=None, repr=False)

    def acquire(self, wait_s: float = 0.0) -> RunLock:
        """Take the lock, trying again for `wait_s` seconds.

        A trainer waits a little (`TRAINER_LOCK_WAIT_S`): `is_locked` probes by
        taking the lock for a moment, and a trainer starting at that very
        moment must not be refused.
        """
        fh = open(self.run.path / ".lock", "a+")  # noqa: SIM115 - held for the process lifetime
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    fh.close()
                    raise
                if time.monotonic() >= deadline:
                    fh.close()
                    raise RunError(
                        f"run {self.run.id} is being trained by another process; "
                        f"`spark-tui attach {self.run.id}` follows it"
                    ) from exc
                time.sleep(0.05)
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def is_locked(run: Run) -> bool:
    """True while some trainer holds the run's lock."""
    try:
        lock = RunLock(run).acquire()
    except RunError:
        return True
    lock.release()
    return False
