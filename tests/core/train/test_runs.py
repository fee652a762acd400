"""Run folders: what create_run writes into run.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from spark_tui.config import RunConfig
from spark_tui.core.train.runs import create_run


def test_create_run_stores_absolute_local_paths(spark_home, tmp_path, monkeypatch):
    """Local paths become absolute in run.toml; "default" and Hub ids stay as typed."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "mine.jsonl").write_text('{"text": "hi"}\n', encoding="utf-8")
    (work / "val.jsonl").write_text('{"text": "hi"}\n', encoding="utf-8")
    monkeypatch.chdir(work)
    cfg = RunConfig()
    cfg.data.path = "mine.jsonl"
    cfg.data.validation_path = "./val.jsonl"
    run = create_run(cfg)
    saved = run.config()
    assert saved.data.path == str(work / "mine.jsonl")
    assert saved.data.validation_path == str(work / "val.jsonl")
    assert saved.model.id == "default"
    assert str(work / "mine.jsonl") in run.config_path.read_text()

    hub = RunConfig()
    hub.model.id = "HuggingFaceTB/SmolLM2-135M-Instruct"
    hub.data.path = "trl-lib/Capybara"
    saved = create_run(hub).config()
    assert saved.model.id == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert saved.data.path == "trl-lib/Capybara"
    assert saved.data.validation_path == ""

    home_cfg = RunConfig()
    home_cfg.model.id = "~/models/mine"
    assert create_run(home_cfg).config().model.id == str(Path.home() / "models" / "mine")


def test_a_starting_trainer_is_not_refused_by_a_momentary_probe(spark_home):
    import threading

    from spark_tui.config import RunConfig
    from spark_tui.core.train.runs import RunError, RunLock, create_run

    run = create_run(RunConfig(name="lock"))
    probe = RunLock(run).acquire()  # what `is_locked` does, for a moment
    threading.Timer(0.3, probe.release).start()
    lock = RunLock(run).acquire(wait_s=2.0)  # the trainer's wait outlasts the probe
    with pytest.raises(RunError, match="being trained by another process"):
        RunLock(run).acquire(wait_s=0.2)  # a real second trainer is refused
    lock.release()
