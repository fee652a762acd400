"""Drills on a real detached trainer of the default model: kill -9, SIGSTOP, two trainers,
the TUI killed while it follows.

One run serves the first story (kill -9 → died with the signal → resume → a
second trainer refused → SIGSTOP → stalled, still followed → SIGCONT → finished),
so the drills cost two process launches, not six.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading

import pytest

from spark_tui.core.train import process
from spark_tui.core.train.orchestrate import run_training
from spark_tui.core.train.runs import RunError, create_run
from tests.reliability.drill import short_run, train_steps, wait_for

pytestmark = pytest.mark.slow


def _pid(run) -> int:
    return int(wait_for(lambda: run.status().get("pid"), 120, "the trainer's pid"))


def test_kill9_stall_and_a_second_trainer(spark_home, default_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SPARK_TUI_STALL_S", "6")  # the reader's threshold: seconds, not minutes
    total = 10
    run = create_run(short_run(tmp_path, steps=total))
    try:
        _kill9_stall_story(run, total)
    finally:
        process.kill_training(run)


def _kill9_stall_story(run, total: int) -> None:
    # kill -9 in the middle of training: died, with the signal recorded.
    process.start_training(run)
    pid = _pid(run)
    wait_for(lambda: run.latest_checkpoint() and run.status().get("step", 0) >= 3, 600, "step 3")
    os.killpg(os.getpgid(pid), signal.SIGKILL)  # what `kill -9` does, not our Kill button
    st = wait_for(lambda: run.status().get("exit_signal") and run.status(), 30, "the exit record")
    assert st["state"] == "died" and st["exit_signal"] == 9 and st["exit_signal_name"] == "SIGKILL"
    assert "SIGKILL" in st["error"] and st["advice"]
    ckpt = int(run.latest_checkpoint().name.split("-")[1])

    # Resume from the last complete checkpoint; a second trainer is refused, by the
    # launcher and by the engine's own lock.
    process.resume_training(run)
    pid = wait_for(
        lambda: run.status().get("pid") not in (None, pid) and run.status()["pid"], 60, "pid"
    )
    wait_for(lambda: run.status().get("state") == "training", 300, "training again")
    with pytest.raises(RunError, match="already training"):
        process.start_training(run)
    with pytest.raises(RunError, match="being trained by another process"):
        run_training(run, resume=True, handle_signals=False)
    assert run.status()["state"] == "training"  # the refused trainer touched nothing

    # SIGSTOP: alive but not moving is "stalled", not died; followers keep following.
    follower = process.RunFollower(run, interval=0.2)
    seen: list[str] = []
    thread = threading.Thread(target=lambda: seen.extend(u.state for u in follower), daemon=True)
    thread.start()
    os.kill(pid, signal.SIGSTOP)
    try:
        st = wait_for(lambda: run.status()["state"] == "stalled" and run.status(), 30, "stalled")
        assert "no heartbeat" in st["stalled"] or "has not moved" in st["stalled"]
        wait_for(lambda: "stalled" in seen, 10, "the follower to see the stall")
        assert thread.is_alive() and process.wait(run, timeout=0.5)["state"] == "stalled"
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: run.status()["state"] in ("training", "finished"), 60, "moving again")
    st = process.wait(run, timeout=600)
    thread.join(timeout=30)
    assert st["state"] == "finished", st
    wait_for(lambda: run.status().get("exit_code") == 0, 30, "the supervisor's exit record")
    assert not thread.is_alive() and seen[-1] == "finished"
    # The curve: every step once, the ones after the checkpoint retrained after the kill.
    assert train_steps(run) == list(range(1, total + 1)) and ckpt >= 2


_TUI = r"""
import sys
from pathlib import Path
from spark_tui.app import SparkTuiApp
from spark_tui.core.train import process, runs

run = runs.Run(Path(sys.argv[1]))

class Drill(SparkTuiApp):
    # The stylesheet is found next to the class's file: point at the real app's.
    CSS_PATH = str(Path(sys.modules[SparkTuiApp.__module__].__file__).parent / SparkTuiApp.CSS_PATH)

    def on_ready(self) -> None:
        process.start_training(run)  # what the Review step's Next does
        self.current_run = run
        self.show_step("train")

Drill(preload=False).run()
"""


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGKILL], ids=["SIGHUP", "SIGKILL"])
async def test_the_tui_killed_while_following(
    sig, spark_home, default_model_dir, tmp_path, wait_until
):
    """A TUI in a real terminal starts a run and follows it; the terminal goes away."""
    import pty

    from spark_tui.app import SparkTuiApp
    from spark_tui.screens.train import TrainScreen

    run = create_run(short_run(tmp_path, steps=200, save_steps=500))
    script = tmp_path / "drill_tui.py"  # Textual wants its App subclass in a file
    script.write_text(_TUI, encoding="utf-8")
    screen = bytearray()
    pid, fd = pty.fork()
    if pid == 0:  # the child: a TUI on a real pseudo-terminal
        os.execv(sys.executable, [sys.executable, str(script), str(run.path)])
    try:
        reader = threading.Thread(target=_drain, args=(fd, screen), daemon=True)
        reader.start()

        def following() -> bool:
            if os.waitpid(pid, os.WNOHANG)[0]:
                raise AssertionError(
                    f"the TUI ended early: {screen[-2000:].decode(errors='replace')}"
                )
            return len(train_steps(run)) >= 2

        wait_for(following, 300, "two steps while the TUI follows")
        os.kill(pid, sig)
        _, code = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(code) and os.WTERMSIG(code) == sig
        # Training goes on without its TUI.
        seen = len(train_steps(run))
        wait_for(lambda: len(train_steps(run)) >= seen + 2, 300, "steps after the TUI died")
        assert run.status()["state"] == "training"
        # A new TUI re-attaches and shows the whole curve, from step 1.
        app = SparkTuiApp(preload=False)
        async with app.run_test(size=(100, 30)) as pilot:
            app.open_run(str(run.path))
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, TrainScreen)
            await wait_until(pilot, lambda: len(screen.metrics) >= seen + 2, 60, "the whole curve")
            steps = [m["step"] for m in screen.metrics if m.get("loss") is not None]
            assert steps == list(range(1, len(steps) + 1)) and screen.state == "training"
    finally:
        process.kill_training(run)
        os.close(fd)


def _drain(fd: int, screen: bytearray) -> None:
    """Read the TUI's terminal output so it never blocks on a full pty."""
    try:
        while chunk := os.read(fd, 65536):
            screen.extend(chunk)
            del screen[:-20000]
    except OSError:
        pass


def test_two_runs_side_by_side_share_no_files(spark_home, default_model_dir, tmp_path):
    """Two runs of one config, created in the same second and trained at once (two processes)."""
    cfg = short_run(tmp_path, steps=2, save_steps=1)
    a, b = create_run(cfg), create_run(cfg)
    assert a.path != b.path and a.path.parent == b.path.parent
    try:
        for r in (a, b):
            process.start_training(r)
        results = {r.id: process.wait(r, timeout=600) for r in (a, b)}
    finally:
        for r in (a, b):
            process.kill_training(r)
    for me, other in ((a, b), (b, a)):
        assert results[me.id]["state"] == "finished", results[me.id]
        assert train_steps(me) == [1, 2] and me.adapter_dir.is_dir()
        # Its two checkpoints were its own, and went when it finished (keep_checkpoints off).
        assert not list(me.checkpoints_dir.glob("checkpoint-*"))
        assert "finished: checkpoints removed" in me.log_path.read_text()
        names_other = re.compile(re.escape(str(other.path)) + r"(?![\w-])")  # not a prefix of me
        for text in (me.log_path.read_text(), (me.path / "status.json").read_text()):
            assert not names_other.search(text)
