"""status.json as the training process keeps it: one in-memory dict, a heartbeat thread.

Readers (the TUI, the CLI, `Run.status()`) only read the file; the launcher sets
it once before the trainer starts.  Both write through `Run.save_status`, the
one writer of the file.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from spark_tui.core.base.atomic import read_json
from spark_tui.core.train.runs import Run

log = logging.getLogger("spark_tui.training")

HEARTBEAT_INTERVAL_S = 5.0


class StatusWriter:
    """Owns status.json for the training process: one in-memory dict, written atomically.

    The heartbeat thread and the trainer callbacks both write through it, under
    one lock, so neither overwrites the other's fields.
    """

    def __init__(self, run: Run) -> None:
        self.run = run
        self._lock = threading.Lock()
        self._st: dict[str, Any] = read_json(run.status_path, default=None) or {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_beat: Callable[[], None] | None = None

    def update(self, **changes: Any) -> dict[str, Any]:
        with self._lock:
            self._st.update(changes)
            self.run.save_status(self._st, heartbeat=True)
            return dict(self._st)

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
