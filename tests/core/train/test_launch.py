"""A run on two processes through the real `accelerate launch` (gloo on CPUs): DDP and FSDP.

The run is started the way the wizard and `spark-tui launch` start it
(`process.start_training` on a run whose [distributed] strategy is set), stopped with
Stop, resumed, and brought down by killing rank 1.  FSDP cannot run here: accelerate
enables it only on GPUs, so on CPUs it is refused (bench/gpu_suite.py runs it on a GPU).  The default model on a few rows
it can learn fast, so that the loss falls within a dozen steps.
"""

from __future__ import annotations

import json
import os
import re
import signal

import pytest

from spark_tui.core.train import process
from spark_tui.core.train.launch import machine_commands, root_cause
from spark_tui.core.train.runs import create_run
from tests.core.train.test_orchestrate import tiny_cfg
from tests.core.train.test_process import _steps, _wait

TOTAL = 10


def _cfg(tmp_path, strategy: str):
    cfg = tiny_cfg(tmp_path, steps=TOTAL, rows=8)
    cfg.train.learning_rate = 2e-3
    cfg.train.warmup_ratio = 0.0
    cfg.train.scheduler = "constant"
    cfg.train.logging_steps = 1
    cfg.distributed.strategy = strategy  # type: ignore[assignment]
    cfg.distributed.processes_per_machine = 2
    # A port of its own per test (two launches on one machine must not meet).
    cfg.distributed.main_port = 29600 + (os.getpid() % 200) + (0 if strategy == "ddp" else 300)
    return cfg


def _rank_pid(run, rank: int) -> int:
    log = run.path / f"train.rank{rank}.log"
    found = re.findall(r"spark-tui training process (\d+)", log.read_text())
    return int(found[-1])


def _train_lines(run) -> list[dict]:
    return [m for m in run.metrics() if m.get("kind") == "train"]


def _stop_then_resume(run) -> dict:
    """Start, Stop after a few steps, check what was written, Resume; the resumed status."""
    process.start_training(run)
    _wait(lambda: run.status().get("step", 0) >= 3, 600, "three steps on two ranks")
    assert process.stop_training(run)
    st = process.wait(run, timeout=300)
    assert st["state"] == "stopped", st
    stopped = st["step"]
    # One collective checkpoint, at the stop step; the output saved by rank 0.
    ckpts = sorted(p.name for p in run.checkpoints_dir.glob("checkpoint-*"))
    assert ckpts == [f"checkpoint-{stopped}"], ckpts
    assert (run.adapter_dir / "adapter_model.safetensors").exists()
    # Only rank 0 wrote the run files: one metrics line per step, status with its pid.
    assert _steps(run) == list(range(1, stopped + 1))
    assert run.status()["pid"] == _rank_pid(run, 0) and run.status()["world_size"] == 2
    for rank in (0, 1):
        log = (run.path / f"train.rank{rank}.log").read_text()
        assert f"rank {rank} of 2" in log
    assert "rank 1 of 2" not in run.log_path.read_text()  # train.log: rank 0's lines
    process.resume_training(run)
    return st


def test_fsdp_is_refused_on_a_machine_without_gpus(spark_home, tmp_path):
    """accelerate turns FSDP on only for GPUs: on CPUs it would silently train as DDP."""
    from spark_tui.core.base.errors import SparkError

    run = create_run(_cfg(tmp_path, "fsdp"))
    with pytest.raises(SparkError, match="FSDP needs GPUs"):
        process.start_training(run)
    assert run.status().get("state") not in ("preparing", "training")
    assert not list(run.path.glob("train.rank*.log"))  # nothing was launched


@pytest.mark.slow
def test_ddp_two_processes_stop_resume_and_a_dead_rank(spark_home, default_model_dir, tmp_path):
    run = create_run(_cfg(tmp_path, "ddp"))
    stopped = _stop_then_resume(run)["step"]
    # Rank 1 dies mid-run (as the OOM killer would end it): the run fails naming it.
    _wait(lambda: run.status().get("step", 0) > stopped + 1, 600, "resumed steps")
    steps = _steps(run)
    assert steps == list(range(1, steps[-1] + 1))  # the resume added no duplicate
    os.kill(_rank_pid(run, 1), signal.SIGKILL)
    st = process.wait(run, timeout=180)
    assert st["state"] == "failed", st
    assert st["failed_rank"] == 1 and "rank 1" in st["error"] and "SIGKILL" in st["error"]
    assert any("train.rank1.log" in a for a in st["advice"])
    assert [cmd[-1] for _, cmd in machine_commands(run, run.config())] == ["0"]
    assert "DDP over 2 processes" in (run.path / "train.rank0.log").read_text()
    lines = _train_lines(run)
    first, last = lines[0]["loss"], sum(m["loss"] for m in lines[-3:]) / 3
    assert last < first * 0.8, (first, last)  # the two ranks learn the few rows together
    # The adapter saved at the Stop is an ordinary PEFT adapter (Deploy reads it).
    from safetensors import safe_open

    with safe_open(str(run.adapter_dir / "adapter_model.safetensors"), "pt") as fh:
        keys = list(fh.keys())
    assert keys and all("lora_" in k for k in keys)
    assert json.loads((run.adapter_dir / "adapter_config.json").read_text())["r"] == 8


def test_root_cause_reads_the_elastic_agents_summary():
    text = (
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:\n"
        "============================================================\n"
        "spark_tui.core.train.entry FAILED\n"
        "------------------------------------------------------------\n"
        "Failures:\n  <NO_OTHER_FAILURES>\n"
        "------------------------------------------------------------\n"
        "Root Cause (first observed failure):\n[0]:\n"
        "  time      : 2026-12-04_21:44:01\n  host      : spark-2\n"
        "  rank      : 3 (local_rank: 1)\n  exitcode  : -9 (pid: 1234)\n"
        "  error_file: <N/A>\n  traceback : Signal 9 (SIGKILL) received by PID 1234\n"
        "============================================================\n"
    )
    failure = root_cause(text)
    assert (failure.rank, failure.local_rank, failure.host, failure.exitcode) == (
        3,
        1,
        "spark-2",
        -9,
    )
    assert failure.describe() == (
        "rank 3 on spark-2 was ended by SIGKILL (killed: most likely out of memory)"
    )
    assert root_cause("a normal log\n") is None


def test_rank_from_the_launchers_environment(monkeypatch):
    from spark_tui.core.train.ranks import current

    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    one = current()
    assert (one.rank, one.world, one.main, one.distributed) == (0, 1, True, False)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    r = current()
    assert (r.rank, r.local_rank, r.world, r.main, r.local_main) == (3, 1, 4, False, False)
    assert r.log_name == "train.rank3.log"


def test_cli_writes_the_launch_and_each_machines_command_without_starting(spark_home, tmp_path,
                                                                          capsys):  # fmt: skip
    from spark_tui.cli import main
    from spark_tui.core.train.runs import list_runs

    cfg = _cfg(tmp_path, "ddp")
    cfg.distributed.machines = 2
    cfg.distributed.main_address = "192.168.100.10"
    toml = tmp_path / "two.toml"
    cfg.save(toml)
    assert main(["train", str(toml)]) == 0
    out = capsys.readouterr().out
    (run,) = list_runs()
    assert f"spark-tui launch {run.path} --machine-rank 1" in out and "not started" in out
    assert (run.path / "accelerate.yaml").exists() and run.status().get("state") == "new"
    # One process: --launch has nothing to launch, and says what to set.
    cfg.distributed.strategy = "none"
    cfg.save(toml)
    assert main(["train", str(toml), "--launch"]) != 0
    assert "[distributed] strategy" in capsys.readouterr().err


def test_the_train_screen_says_a_launched_run_spans_ranks():
    from spark_tui.screens.train import status_line

    st = {"state": "training", "step": 3, "total_steps": 10, "world_size": 2}
    assert "2 ranks" in status_line(st, {})
    assert "ranks" not in status_line({**st, "world_size": 1}, {})
