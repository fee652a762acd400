"""Detached training processes: start, follow, stop, kill -> died, resume; and the follower.

Most tests use fake run folders and dummy processes (milliseconds); one slow
test drives a real detached trainer of the default model through kill ->
died -> resume -> stop -> resume -> finished.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from spark_tui.config import RunConfig
from spark_tui.core.base.atomic import atomic_write_json, atomic_write_text
from spark_tui.core.train import process
from spark_tui.core.train.runs import RunError, RunLock, create_run, pid_alive, proc_start_time


def _fake_run(state: str = "training", pid: int | None = None, **extra):
    run = create_run(RunConfig(name="fake"))
    st = {"state": state, "pid": pid or os.getpid(), "heartbeat": time.time(), "step": 0}
    st.update(extra)
    atomic_write_json(run.status_path, st)
    return run


def _line(step: int, **kw) -> str:
    return json.dumps({"kind": "train", "step": step, "loss": 1.0 / step, **kw}) + "\n"


# --------------------------------------------------------------------------- follower


def test_follower_reads_complete_lines_incrementally(spark_home):
    run = _fake_run()
    run.metrics_path.write_text(_line(1) + _line(2) + '{"kind": "train", "st')
    f = process.RunFollower(run, interval=0.01)
    up = f.poll()
    assert [m["step"] for m in up.metrics] == [1, 2] and not up.done and up.state == "training"
    with open(run.metrics_path, "a") as fh:
        fh.write('ep": 3, "loss": 0.3}\n')
    assert [m["step"] for m in f.poll().metrics] == [3]
    assert f.poll().metrics == []  # nothing new
    assert [m["step"] for m in f.metrics] == [1, 2, 3]


def test_follower_sees_a_rewritten_metrics_file_as_a_reset(spark_home):
    run = _fake_run()
    run.metrics_path.write_text(_line(1) + _line(2) + _line(3))
    f = process.RunFollower(run)
    f.poll()
    # Resume from checkpoint-2: the file is replaced with the lines up to step 2.
    atomic_write_text(run.metrics_path, _line(1) + _line(2))
    up = f.poll()
    assert up.reset and [m["step"] for m in up.metrics] == [1, 2]
    with open(run.metrics_path, "a") as fh:
        fh.write(_line(3, loss=0.25))
    up = f.poll()
    assert not up.reset and [m["step"] for m in f.metrics] == [1, 2, 3]


def test_follower_tails_the_log_and_stops_when_done(spark_home):
    run = _fake_run()
    run.log_path.write_text("x" * 200_000 + "\nlast old line\n")
    f = process.RunFollower(run, interval=0.01, log_tail_bytes=1000)
    up = f.poll()
    assert len(up.log) <= 1000 and up.log.endswith("last old line\n")
    with open(run.log_path, "a") as fh:
        fh.write("new line\n")
    assert f.poll().log == "new line\n"
    atomic_write_json(run.status_path, {**run.status(), "state": "finished"})
    ups = list(f)
    assert len(ups) == 1 and ups[0].done and ups[0].state == "finished"


def test_follower_close_ends_iteration(spark_home):
    run = _fake_run()
    f = process.RunFollower(run, interval=0.01, stop_when_done=False)
    seen = 0
    for _ in f:
        seen += 1
        if seen == 3:
            f.close()
    assert seen == 3 and f.closed


# --------------------------------------------------------------------------- liveness


def test_dead_zombie_and_recycled_pids_show_as_died(spark_home):
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert _fake_run(pid=gone.pid).status()["state"] == "died"

    zombie = subprocess.Popen(["true"])  # exits; not reaped until wait()
    deadline = time.time() + 5
    while pid_alive(zombie.pid) and time.time() < deadline:
        time.sleep(0.02)
    assert not pid_alive(zombie.pid)
    assert _fake_run(pid=zombie.pid).status()["state"] == "died"
    zombie.wait()

    me = os.getpid()
    assert _fake_run(pid=me, pid_start=proc_start_time(me)).status()["state"] == "training"
    assert _fake_run(pid=me, pid_start=12345).status()["state"] == "died"  # recycled pid
    # Alive but silent is stalled (not final), never died.
    stale = _fake_run(pid=me, heartbeat=time.time() - 3600)
    assert stale.status()["state"] == "stalled" and "no heartbeat" in stale.status()["stalled"]
    assert _fake_run(state="finished", pid=gone.pid).status()["state"] == "finished"


def test_kill_a_trainer_process_group(spark_home):
    dummy = subprocess.Popen(["sleep", "60"], start_new_session=True)
    run = _fake_run(pid=dummy.pid, pid_start=proc_start_time(dummy.pid))
    assert process.kill_training(run)
    assert dummy.wait(timeout=10) == -signal.SIGKILL
    assert run.status()["state"] == "died"
    assert not process.kill_training(run)  # nothing left to kill


def test_stop_writes_the_request_and_signals(spark_home):
    dummy = subprocess.Popen(["sleep", "60"], start_new_session=True)
    run = _fake_run(pid=dummy.pid, pid_start=proc_start_time(dummy.pid))
    assert process.stop_training(run)
    assert (run.path / process.STOP_FILE).exists()
    assert dummy.wait(timeout=10) == -signal.SIGTERM  # sleep has no handler; the trainer has
    assert not process.stop_training(_fake_run(state="finished"))


def test_start_refuses_a_locked_run_and_resume_a_finished_one(spark_home):
    run = _fake_run(state="training")
    with RunLock(run), pytest.raises(RunError, match="already training"):
        process.start_training(run)
    # A lock that outlives its (dead) trainer for a moment is waited for, not refused.
    run = _fake_run(state="died")
    lock = RunLock(run).acquire()
    threading.Timer(0.5, lock.release).start()
    assert process._wait_unlocked(run, 10.0)
    with pytest.raises(RunError, match="finished"):
        process.resume_training(_fake_run(state="finished"))
    with pytest.raises(RunError, match="still training"):
        process.resume_training(_fake_run(state="training"))


def test_process_and_cli_modules_do_not_import_torch():
    code = (
        "import sys\n"
        "import spark_tui.core.train.process, spark_tui.core.train.runs\n"
        "import spark_tui.core.method.choices, spark_tui.core.method.precision\n"
        "import spark_tui.core.method.peft_config, spark_tui.core.method.trainer_args\n"
        "import spark_tui.core.method.trl_compat, spark_tui.commands.train, spark_tui.commands.runs\n"
        "bad = [m for m in ('torch', 'transformers', 'trl', 'peft', 'textual') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- real trainer


def _wait(cond, timeout: float, what: str):
    end = time.time() + timeout
    while time.time() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _steps(run) -> list[int]:
    return [m["step"] for m in run.metrics() if m.get("kind") == "train"]


@pytest.mark.slow
def test_detached_kill_died_resume_stop_resume(spark_home, default_model_dir, tmp_path):
    from tests.core.train.test_orchestrate import tiny_cfg

    total = 8
    cfg = tiny_cfg(tmp_path, steps=total, rows=32)
    cfg.train.save_steps = 2
    run = create_run(cfg)
    handle = process.start_training(run)
    assert handle.pid > 0 and run.status()["state"] in ("preparing", "training")
    with pytest.raises(RunError):  # one trainer per run
        _wait(lambda: run.status().get("pid"), 120, "the trainer's pid")
        process.start_training(run)

    # Kill after the first checkpoint: the run shows as died.
    _wait(run.latest_checkpoint, 600, "a checkpoint")
    assert process.kill_training(run)
    _wait(lambda: run.status()["state"] == "died", 30, "state died")
    ckpt = int(run.latest_checkpoint().name.split("-")[1])

    # Resume: the curve continues from the checkpoint (lines after it were dropped).
    process.resume_training(run)
    _wait(
        lambda: run.status().get("resumed_from") == ckpt and _steps(run)[-1:] > [ckpt],
        600,
        "resumed steps",
    )
    steps = _steps(run)
    assert steps == list(range(1, steps[-1] + 1))

    # Stop gracefully: checkpoint at the stop step, state stopped.
    assert process.stop_training(run)
    st = process.wait(run, timeout=600)
    assert st["state"] == "stopped", st
    stopped_at = st["step"]
    assert run.latest_checkpoint().name == f"checkpoint-{stopped_at}"
    assert _steps(run) == list(range(1, stopped_at + 1))

    if stopped_at < total:
        process.resume_training(run)
        st = process.wait(run, timeout=600)
    assert st["state"] == "finished", st
    assert _steps(run) == list(range(1, total + 1))
    assert run.adapter_dir.exists()
    log = run.log_path.read_text()
    assert log.count("spark-tui training process") >= 2 and "resuming from checkpoint-" in log

    # Following a finished run gives the whole curve at once and ends.
    ups = list(process.RunFollower(run, interval=0.01))
    assert ups[-1].done and [m["step"] for m in ups[0].metrics if m["kind"] == "train"] == list(
        range(1, total + 1)
    )


@pytest.mark.slow
def test_cli_train_then_runs(spark_home, default_model_dir, tmp_path):
    """`spark-tui train ... --max-steps N` writes the run, trains detached, follows it; `runs` lists it."""
    from tests.core.train.test_orchestrate import tiny_data

    data = tiny_data(tmp_path, "sft", rows=4)
    env = dict(os.environ, SPARK_TUI_HOME=str(spark_home))
    cmd = [sys.executable, "-m", "spark_tui", "train", "--model", "default", "--data", str(data)]
    cmd += ["--method", "lora", "--max-steps", "4", "--micro-batch-size", "4", "--lr", "1e-3"]
    cmd += [
        "--max-length",
        "64",
        "--set",
        "train.scheduler=constant",
        "--set",
        "train.warmup_ratio=0.0",
    ]
    cmd += ["--set", "data.val_fraction=0.0", "--set", "train.gradient_checkpointing=false"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "finished" in out.stdout and "step 4/4" in out.stdout

    listed = subprocess.run(
        [sys.executable, "-m", "spark_tui", "runs", "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    (row,) = json.loads(listed.stdout)
    assert row["state"] == "finished" and row["step"] == 4
    # The same four rows every step: the loss must go down.
    assert row["final_loss"] < row["first_loss"]
    run_dir = spark_home / "runs" / row["id"]
    for name in ("run.toml", "status.json", "metrics.jsonl", "train.log", "checkpoints", "adapter"):
        assert (run_dir / name).exists(), name
