"""status.json as the training process keeps it: one in-memory dict, a heartbeat thread.

Readers (the TUI, the CLI, `Run.status()`) only read the file; the launcher sets
it once before the trainer starts.  Both write through `Run.save_status`, the
one writer of the file.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from spark_tui.core.base.atomic import read_json
from spark_tui.core.train.runs import Run

log = logging.getLogger("spark_tui.training")

HEARTBEAT_INTERVAL_S = 5.0
STATUS_MIN_INTERVAL_S = 1.0  # per-step progress is written at most once a second


class StatusWriter:
    """Owns status.json for the training process: one in-memory dict, written atomically.

    The heartbeat thread and the trainer callbacks both write through it, under
    one lock, so neither overwrites the other's fields.
    """

    def __init__(self, run: Run, *, write: bool = True) -> None:
        self.run = run
        self.write = write  # False on the other ranks of a distributed run: rank 0 writes
        self._lock = threading.Lock()
        self._st: dict[str, Any] = read_json(run.status_path, default=None) or {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_beat: Callable[[], None] | None = None
        self._base: tuple[float | None, int | None] = (None, None)  # loop start: time, step
        self._written = float("-inf")  # time.monotonic() of the last write

    def update(self, *, throttle: bool = False, **changes: Any) -> dict[str, Any]:
        """Apply `changes` and write status.json.  With `throttle` (the per-step progress),
        a write less than STATUS_MIN_INTERVAL_S after the last one waits for the next
        update or heartbeat: on a GPU a step can take 50 ms, and each write is an fsync."""
        with self._lock:
            self._mark_step(changes)
            self._st.update(changes)
            now = time.monotonic()
            if not self.write:
                return dict(self._st)
            if throttle and "state" not in changes and now - self._written < STATUS_MIN_INTERVAL_S:
                return dict(self._st)
            self.run.save_status(self._st, heartbeat=True)
            self._written = now
            return dict(self._st)

    def _mark_step(self, changes: dict[str, Any]) -> None:
        """When the step moves: its time and the usual step time (what "stalled" is judged by)."""
        step = changes.get("step")
        if step is None:
            return
        now = time.time()
        if changes.get("state") == "training" and self._st.get("state") != "training":
            self._st["step_time_s"] = None  # a (re)started loop: measure afresh
            self._st["last_step_at"] = now
            self._base = (now, int(step))
            return
        before = self._st.get("step")
        if before is None or int(step) <= int(before):
            return
        self._st["last_step_at"] = now
        t0, s0 = self._base
        if t0 is not None and s0 is not None and int(step) > s0:
            self._st["step_time_s"] = round((now - t0) / (int(step) - s0), 3)

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            return self._st.get(key, default)

    def start_heartbeat(self, interval: float = HEARTBEAT_INTERVAL_S) -> None:
        def beat() -> None:
            while not self._stop.wait(interval):
                try:
                    if self.on_beat is not None:
                        self.on_beat()
                    self.update()
                except Exception:  # pragma: no cover - a full disk must not kill training
                    log.exception("heartbeat failed")

        self._thread = threading.Thread(target=beat, name="spark-heartbeat", daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * HEARTBEAT_INTERVAL_S)
