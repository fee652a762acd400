"""status.json has one writer (launcher: `Run.write_status`, trainer: `StatusWriter`); stop file."""

from __future__ import annotations

import os

from spark_tui.core.base import names
from spark_tui.core.base.atomic import read_json
from spark_tui.core.train.runs import Run
from spark_tui.core.train.status import StatusWriter
from spark_tui.core.train.stop import StopControl


def test_launcher_and_trainer_write_status_durably_through_one_writer(tmp_path, monkeypatch):
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    run = Run(tmp_path)
    run.write_status(state="preparing", step=0)
    assert len(synced) == 1
    writer = StatusWriter(run)
    assert writer.get("state") == "preparing"  # the trainer starts from what the launcher wrote
    st = writer.update(state="training", step=3)
    assert len(synced) == 2
    assert st["heartbeat"] == st["updated"]
    assert read_json(run.status_path) == st
    # The launcher's writes stamp `updated` only: the heartbeat is the trainer's.
    later = run.write_status(phase="saving")
    assert later["heartbeat"] == st["heartbeat"] and later["updated"] >= st["updated"]
    assert len(synced) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [names.STATUS_FILE]  # no temp files


def test_stop_file_is_seen_and_cleared(tmp_path):
    run = Run(tmp_path)
    control = StopControl(run)
    assert not control.check()
    (tmp_path / names.STOP_FILE).write_text("stop")
    assert control.check() and control.reason == "stop requested"
    control.clear()
    assert not (tmp_path / names.STOP_FILE).exists()
    control.clear()  # nothing left to clear: no error


def test_the_time_of_the_last_step_and_the_usual_step_time_are_recorded(tmp_path, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("spark_tui.core.train.status.time.time", lambda: clock[0])
    writer = StatusWriter(Run(tmp_path))
    writer.update(state="training", step=10)  # the loop (re)starts at step 10
    assert writer.get("last_step_at") == 1000.0 and writer.get("step_time_s") is None
    clock[0] = 1004.0
    writer.update(step=12)
    assert writer.get("last_step_at") == 1004.0 and writer.get("step_time_s") == 2.0
    clock[0] = 1010.0
    writer.update(step=12, eta_s=5)  # the same step again: not a new step
    assert writer.get("last_step_at") == 1004.0


def test_per_step_progress_is_written_at_most_once_a_second(tmp_path):
    """Throttled updates stay in memory until a second has passed; a state change never waits."""
    run = Run(tmp_path)
    w = StatusWriter(run)
    w.update(state="training", step=0)
    w.update(throttle=True, step=1)
    assert run.status()["step"] == 0  # too soon after the last write
    assert w.get("step") == 1  # but kept: the next write or heartbeat carries it
    w.update(state="stopping", step=2)
    assert run.status()["step"] == 2 and run.status()["state"] == "stopping"
    w._written -= 2.0  # a second and more later
    w.update(throttle=True, step=3)
    assert run.status()["step"] == 3
