"""The whole wizard, driven by Pilot on the bundled model and data with a tiny step count.

default model → memory verdict → bundled dataset → LoRA + SFT quick preset → review →
train to completion → evaluate → merge → GGUF f16 → Modelfile, asserting the artefacts.
"""

from __future__ import annotations

import os

import pytest
from textual.widgets import Input, Select

from spark_tui.app import SparkTuiApp
from spark_tui.screens.dataset import DatasetScreen
from spark_tui.screens.deploy import DeployScreen
from spark_tui.screens.evaluate import EvaluateScreen
from spark_tui.screens.memory import MemoryScreen
from spark_tui.screens.method import MethodScreen
from spark_tui.screens.model import ModelScreen
from spark_tui.screens.review import ReviewScreen
from spark_tui.screens.train import TrainScreen


def _shot(app, name: str) -> None:
    """With SPARK_TUI_SCREENSHOTS=DIR, save each step as an SVG for the README."""
    folder = os.environ.get("SPARK_TUI_SCREENSHOTS")
    if folder:
        app.save_screenshot(filename=f"{name}.svg", path=folder)


@pytest.mark.slow
async def test_whole_wizard_to_modelfile(spark_home, default_model_dir, monkeypatch, wait_until):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no ollama on PATH: the step must say so
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")  # nothing listens there
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await wait_until(pilot, lambda: "GB" in str(app.screen.query_one("#system-summary").render()),
                         60, "the system summary")
        _shot(app, "welcome")
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, ModelScreen) and app.screen.info is not None,
                         60, "the model card")
        assert app.screen.info.id == "default"
        _shot(app, "model")
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, MemoryScreen) and app.screen.verdict is not None,
                         60, "the memory verdict")
        assert app.screen.verdict.status in ("fits", "tight")
        _shot(app, "memory")
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, DatasetScreen) and app.screen.prepared is not None,
                         180, "the bundled dataset")
        _shot(app, "dataset")
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, MethodScreen), 30, "the method step")
        method = app.screen
        method.query_one("#preset", Select).value = "quick"
        await pilot.pause()
        method.query_one("#f-train-max_steps", Input).value = "3"
        method.query_one("#f-data-max_length", Input).value = "64"
        await pilot.pause()
        assert app.config.train.max_steps == 3 and app.config.method.adapter == "lora"
        _shot(app, "method")
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, ReviewScreen), 30, "the review")
        run = app.current_run
        assert run is not None and run.config_path.exists()
        assert "spark-tui train" in app.screen.command
        _shot(app, "review")
        await pilot.press("ctrl+n")  # start training
        await wait_until(pilot, lambda: isinstance(app.screen, TrainScreen), 30, "the train screen")
        await wait_until(pilot, lambda: app.screen.state in ("finished", "failed", "died"), 600,
                         "training to finish")
        assert app.screen.state == "finished", run.status()
        _shot(app, "train")
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, EvaluateScreen), 30, "the evaluate screen")
        await pilot.press("e")
        await wait_until(pilot, lambda: app.screen.result is not None, 600, "the evaluation")
        assert "perplexity" in (app.screen.result.get("tuned") or {})
        _shot(app, "evaluate")
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, DeployScreen), 30, "the deploy screen")
        deploy = app.screen
        deploy.query_one("#gguf-type", Select).value = "f16"
        await pilot.pause()
        await pilot.press("a")
        await wait_until(pilot, lambda: not deploy.busy and "ollama" in deploy.results, 900, "deployment")
        assert deploy.results["merge"]["rc"] == 0, deploy.results["merge"]
        assert deploy.results["export"]["rc"] == 0, deploy.results["export"]
        assert deploy.results["export"]["verified"]["f16"] is True
        ollama = deploy.results["ollama"]
        command = ollama.get("command") or []
        command = " ".join(command) if isinstance(command, list) else command
        assert ollama.get("registered") is False and "ollama create" in command
        log = "\n".join(str(line.text) for line in deploy.query_one("#deploy-log").lines)
        assert "Run later: ollama create" in log
        _shot(app, "deploy")

    # The artefacts a user keeps, all in the run folder.
    for name in ("run.toml", "status.json", "metrics.jsonl", "train.log", "eval.json", "Modelfile"):
        assert (run.path / name).exists(), name
    assert (run.path / "adapter" / "adapter_config.json").exists()
    assert (run.path / "merged" / "config.json").exists()
    ggufs = list((run.path / "gguf").glob("*.gguf"))
    assert ggufs and ggufs[0].name.endswith("f16.gguf")
    modelfile = (run.path / "Modelfile").read_text()
    assert "FROM" in modelfile and "TEMPLATE" in modelfile and "PARAMETER stop" in modelfile
