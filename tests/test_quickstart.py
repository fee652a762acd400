from __future__ import annotations

import questionary

from spark_tui.cli import main
from spark_tui.commands import quickstart
from spark_tui.core.train import runs


class _Answer:
    def __init__(self, value):
        self.value = value

    def ask(self):
        return self.value


def _script(monkeypatch, answers):
    it = iter(answers)

    def prompt(*_a, **_k):
        return _Answer(next(it))

    for name in ("select", "text", "path"):
        monkeypatch.setattr(questionary, name, prompt)


def test_questions_build_the_config(monkeypatch):
    _script(monkeypatch, ["default", "default:dpo", "qlora", "quick", "12"])
    cfg = quickstart.ask_config()
    assert cfg.model.id == "default" and cfg.data.path == "default"
    assert cfg.method.objective == "dpo" and cfg.method.adapter == "qlora"
    assert cfg.train.max_steps == 12 and cfg.lora.r == 16  # the quick preset


def test_ctrl_c_changes_nothing(monkeypatch, spark_home, capsys):
    _script(monkeypatch, ["default", None])
    assert main(["quickstart"]) == 130
    assert "no changes were made" in capsys.readouterr().out
    assert runs.list_runs() == []


def test_quickstart_writes_run_toml_and_starts(monkeypatch, spark_home, default_model_dir):
    from spark_tui.core.train import process

    started = []
    monkeypatch.setattr(process, "start_training", lambda run, **k: started.append(run))
    assert main(["quickstart", "--yes", "--detach"]) == 0
    (run,) = runs.list_runs()
    cfg = run.config()
    assert cfg.model.id == "default" and cfg.method.adapter == "lora"
    assert started and started[0].path == run.path
