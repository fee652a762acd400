"""Sweeps: planning, manifest, a real two-run sweep, cancel, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spark_tui.cli import main
from spark_tui.config import RunConfig
from spark_tui.core.evaluate import sweep as sw

ROOT = Path(__file__).resolve().parents[3]


def test_values_are_typed_like_the_setting():
    base = RunConfig(name="b")
    assert sw.parse_values(base, "lora.r", "4, 8,16") == [4, 8, 16]
    assert sw.parse_values(base, "train.learning_rate", "1e-4,2e-4") == [1e-4, 2e-4]
    assert sw.parse_values(base, "method.use_dora", "false,true") == [False, True]
    assert sw.parse_values(base, "method.objective", ["sft", "dpo"]) == ["sft", "dpo"]
    with pytest.raises(sw.SweepError, match="not a valid int"):
        sw.parse_values(base, "lora.r", "4,eight")
    with pytest.raises(sw.SweepError, match="twice"):
        sw.parse_values(base, "lora.r", "4,4")
    with pytest.raises(sw.SweepError, match="unknown setting"):
        sw.plan_sweep(base, "lora.rank", "4,8")
    with pytest.raises(sw.SweepError, match="out of range"):
        sw.plan_sweep(base, "lora.r", "0,8")
    with pytest.raises(sw.SweepError, match="not allowed"):
        sw.plan_sweep(base, "method.objective", "sft,magic")


def test_plan_changes_only_the_swept_key():
    base = RunConfig(name="base")
    plans = sw.plan_sweep(base, "train.neftune_alpha", "0,5", max_steps=3)
    assert [p.train.neftune_alpha for p in plans] == [0.0, 5.0]
    assert all(p.train.max_steps == 3 for p in plans)
    assert [p.name for p in plans] == ["base-neftune_alpha-0.0", "base-neftune_alpha-5.0"]
    assert plans[0].lora == base.lora


def test_manifest_and_compare_without_training(spark_home):
    base = RunConfig(name="plan")
    s = sw.create_sweep(base, "lora.r", "4,8", max_steps=2)
    assert len(s.runs) == 2 and s.values == [4, 8]
    assert s.manifest_path.parent == spark_home / "sweeps"
    data = json.loads(s.manifest_path.read_text())
    assert data["param"] == "lora.r" and [r["run_id"] for r in data["runs"]] == s.run_ids
    loaded = sw.load_sweep(s.id)
    assert loaded.run_ids == s.run_ids and loaded.values == [4, 8]
    assert [x.id for x in sw.list_sweeps()] == [s.id]
    assert [r.config().lora.r for r in loaded.handles()] == [4, 8]
    assert loaded.compare().differing == ["lora.r"]
    assert loaded.points("final_eval_loss") == [(4, None), (8, None)]
    # Cancelled before the first run: nothing is trained.
    out = sw.run_sweep(loaded, mode="inprocess", cancel=lambda: True)
    assert [r.state for r in out.runs] == ["new", "new"]


def test_detached_mode_waits_and_stops(spark_home, monkeypatch):
    """The process path: start, wait for a final state, stop on cancel (fake trainer)."""
    from spark_tui.core.train import process

    s = sw.create_sweep(RunConfig(name="det"), "lora.r", "4,8")
    started, stopped = [], []

    def fake_start(run, **kw):
        started.append(run.id)
        run.write_status(state="training", step=1, total_steps=2)

    def fake_wait(run, timeout=None, poll=0.5):
        if run.id in stopped:
            run.write_status(state="stopped")
        elif run.id == s.run_ids[0]:
            run.write_status(state="finished")
        return run.status()  # the second run keeps training until it is stopped

    def fake_stop(run):
        stopped.append(run.id)
        return True

    monkeypatch.setattr(process, "start_training", fake_start)
    monkeypatch.setattr(process, "wait", fake_wait)
    monkeypatch.setattr(process, "stop_training", fake_stop)

    def cancel():  # let the first run finish; cancel during the second
        return started == s.run_ids

    seen = []
    out = sw.run_sweep(
        s, mode="process", cancel=cancel, poll=0.01, progress=lambda f, m: seen.append(f)
    )
    assert started == s.run_ids
    assert stopped == [s.run_ids[1]]
    assert [r.state for r in out.runs] == ["finished", "stopped"]
    assert seen[-1] == 1.0


@pytest.mark.slow
def test_real_sweep_of_two_values(spark_home, tmp_path, default_model_dir):
    """Two real (tiny) training runs through the engine; the table lists exactly lora.r."""
    rows = [
        json.loads(x)
        for x in (ROOT / "spark_tui/data/instructions.jsonl").read_text().splitlines()[:10]
    ]
    data = tmp_path / "tiny.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = RunConfig.from_dict(
        {
            "name": "tiny",
            "data": {"path": str(data), "val_fraction": 0.2, "max_length": 128},
            "lora": {"r": 4, "alpha": 8, "target_modules": "q_proj,v_proj"},
            "train": {"micro_batch_size": 2, "save_steps": 100, "gradient_checkpointing": False},
        }
    )
    s = sw.create_sweep(base, "lora.r", "2,4", max_steps=1)
    sw.run_sweep(s, mode="inprocess")
    assert [r.state for r in s.runs] == ["finished", "finished"], [
        r.status().get("error") for r in s.handles()
    ]
    assert all(r.adapter_dir.is_dir() for r in s.handles())
    table = s.compare()
    assert table.differing == ["lora.r"]
    md = table.to_markdown()
    assert md.splitlines()[0].startswith("| run | lora.r | state |")
    points = s.points("final_loss")
    assert [v for v, _ in points] == [2, 4] and all(m is not None for _, m in points)
    # Re-running skips finished runs.
    assert [r.state for r in sw.run_sweep(s, mode="inprocess").runs] == ["finished", "finished"]


def test_cli_dry_run(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    RunConfig(name="cli").save(cfg)
    assert main(["sweep", str(cfg), "--param", "lora.r", "--values", "4,8", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["cli-r-4: lora.r = 4", "cli-r-8: lora.r = 8"]
    assert main(["sweep", str(cfg), "--param", "lora.rank", "--values", "4", "--dry-run"]) == 2
