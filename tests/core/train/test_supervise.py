"""The supervisor: it records how the trainer ended, and why a run died.

Real processes (a few milliseconds of `python -c`), run under the real
supervisor module as `process.start_training` runs it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from spark_tui.config import RunConfig
from spark_tui.core.base import names
from spark_tui.core.train import supervise
from spark_tui.core.train.runs import Run, create_run, stalled


def _supervised(run: Run, code: str) -> tuple[int, dict]:
    """Run `python -c code` as the trainer under the supervisor; (its pid, the final status)."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "spark_tui.core.train.supervise",
            str(run.path),
            str(run.log_path),
            "--",
            sys.executable,
            "-c",
            code,
        ],
        capture_output=True,
        timeout=60,
        check=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    return int(out.stdout.decode()), run.status()


def _run(state: str = "preparing") -> Run:
    run = create_run(RunConfig(name="sup"))
    run.write_status(state=state, pid=None)
    return run


def test_pid_is_recorded_and_an_exit_without_a_final_state_is_died(spark_home):
    run = _run()
    pid, st = _supervised(run, "import sys; sys.exit(3)")
    assert st["pid"] == pid and st["pid_start"] and st["supervisor_pid"]
    assert st["state"] == "died" and st["exit_code"] == 3
    assert "exited with code 3" in st["error"] and st["advice"]


def test_a_final_state_is_kept_and_the_exit_code_added(spark_home):
    run = _run()
    code = (
        "import json, os, sys; p = sys.argv[0]\n"
        f"st = json.load(open({str(run.status_path)!r}))\n"
        "st.update(state='finished', pid=os.getpid())\n"
        f"json.dump(st, open({str(run.status_path)!r}, 'w'))\n"
    )
    _, st = _supervised(run, code)
    assert st["state"] == "finished" and st["exit_code"] == 0 and "error" not in st


def test_signals_are_named_and_a_requested_kill_is_said_so(spark_home):
    run = _run()
    _, st = _supervised(run, "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    assert st["state"] == "died" and st["exit_signal"] == signal.SIGSEGV
    assert "SIGSEGV" in st["error"]

    run = _run()
    (run.path / names.KILL_FILE).write_text("now\n")
    _, st = _supervised(run, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert st["exit_signal"] == 9 and st["exit_signal_name"] == "SIGKILL"
    assert "killed with Kill" in st["error"] and not (run.path / names.KILL_FILE).exists()


def test_sigkill_while_holding_most_memory_reads_as_the_oom_killer():
    total = 24 * 2**30
    watch = supervise.Watch(peak_rss=int(0.7 * total), total_memory=total, last_available=total // 4)
    fields = supervise.explain_death(-signal.SIGKILL, watch, RunConfig(name="x"))
    assert fields["error"].startswith("killed by the kernel, most likely out of memory")
    assert fields["oom"] is True and len(fields["advice"]) >= 2
    # A cgroup oom_kill count that rose counts even for a small process.
    small = supervise.Watch(peak_rss=2**30, total_memory=total, oom_kills_before=0, oom_kills_after=1)
    assert "oom_kill count rose" in supervise.explain_death(-9, small, None)["error"]
    # A small process SIGKILLed by someone else is not called an OOM.
    plain = supervise.Watch(peak_rss=2**30, total_memory=total, last_available=total // 2)
    fields = supervise.explain_death(-9, plain, None)
    assert "oom" not in fields and "SIGKILL" in fields["error"]


def test_memory_events_are_read_when_the_machine_has_them(tmp_path):
    events = tmp_path / "memory.events"
    events.write_text("low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\n")
    assert supervise.oom_kills(events) == 1
    assert supervise.oom_kills(None) is None and supervise.oom_kills(tmp_path / "no") is None


def test_record_never_overwrites_another_trainers_status(spark_home):
    run = _run("training")
    run.write_status(pid=os.getpid())
    supervise.record(run, pid=os.getpid() + 100000, returncode=2, watch=supervise.Watch())
    assert run.status()["state"] == "training" and "exit_code" not in run.status()


def test_stall_is_judged_by_heartbeat_and_by_the_usual_step_time(monkeypatch):
    now = time.time()
    base = {"pid": os.getpid(), "state": "training", "heartbeat": now, "step": 7}
    assert stalled(base, now) is None
    assert "no heartbeat" in stalled({**base, "heartbeat": now - 120}, now)
    slow = {**base, "last_step_at": now - 100, "step_time_s": 2.0}
    assert stalled(slow, now) is None  # 100 s < max(180 s, 20 × 2 s)
    assert "has not moved for 400 s" in stalled({**slow, "last_step_at": now - 400}, now)
    assert stalled({**slow, "state": "stopping", "last_step_at": now - 400}, now) is None
    monkeypatch.setenv("SPARK_TUI_STALL_S", "5")
    assert stalled({**base, "last_step_at": now - 6}, now)


def test_a_launched_run_names_the_rank_that_died_or_the_kill(spark_home):
    """The launcher exits 1 whichever rank went down: its summary names the rank, and a Kill
    (of rank 0) is reported as the Kill it was."""
    from spark_tui.core.base.names import KILL_FILE

    launcher = os.getpid() + 100000
    run = _run("training")
    run.write_status(pid=os.getpid(), launcher_pid=launcher, supervisor_pid=os.getpid())
    run.log_path.write_text(
        "Root Cause (first observed failure):\n[0]:\n  host      : spark-2\n"
        "  rank      : 1 (local_rank: 0)\n  exitcode  : -9 (pid: 77)\n"
        "  traceback : Signal 9 (SIGKILL) received by PID 77\n" + "=" * 20 + "\n"
    )
    st = supervise.record(run, pid=launcher, returncode=1, watch=supervise.Watch())
    assert st["state"] == "failed" and st["failed_rank"] == 1 and st["exit_code"] == 1
    assert st["error"].startswith("rank 1 on spark-2 was ended by SIGKILL")
    run.write_status(state="training", failed_rank=None, error=None)
    (run.path / KILL_FILE).write_text("now\n")
    st = supervise.record(run, pid=launcher, returncode=1, watch=supervise.Watch())
    assert st["state"] == "died" and "killed with Kill" in st["error"]
