"""The first look at a finished run: held-out loss before/after and a few answers, kept."""

from __future__ import annotations

import time

import conftest_eval
import pytest

from spark_tui.core.base import names
from spark_tui.core.evaluate import first_look
from spark_tui.core.evaluate.errors import EvalCancelled


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, default_model_dir):
    run = conftest_eval.make_sft_run(
        tmp_path_factory.mktemp("first-look"), default_model_dir, name="first-look"
    )
    run.write_status(state="finished")
    return run


@pytest.mark.slow
def test_first_look_scores_both_sides_keeps_the_result_and_fits_the_panel(finished_run):
    assert first_look.wanted(finished_run)
    look = first_look.first_look(finished_run)
    assert set(look["loss"]) == {"base", "tuned"}
    assert look["loss"]["base"] > 0 and look["loss"]["tuned"] > 0
    assert look["loss"]["base"] != look["loss"]["tuned"]  # the adapter changed something
    assert 1 <= len(look["pairs"]) <= 3
    assert all(p["prompt"] and isinstance(p["tuned"], str) for p in look["pairs"])
    assert (finished_run.path / names.FIRST_LOOK_FILE).exists()
    assert not (finished_run.path / names.EVAL_FILE).exists()  # the Evaluate step's own file
    # Kept: the second look is the first one, read back.
    assert first_look.first_look(finished_run)["created"] == look["created"]
    lines = first_look.look_lines(look, 38)
    assert lines[0].startswith("held-out loss") and "→" in lines[0]
    assert all(len(line) <= 38 for line in lines)
    assert sum(line.lstrip().startswith("tuned:") for line in lines) == len(look["pairs"])
    # Trained again after the look: the kept one no longer counts.
    time.sleep(0.01)
    finished_run.write_status(state="finished")
    assert first_look.cached(finished_run) is None


def test_a_cancelled_look_leaves_nothing_behind(finished_run):
    (finished_run.path / names.FIRST_LOOK_FILE).unlink(missing_ok=True)
    with pytest.raises(EvalCancelled):
        first_look.first_look(finished_run, cancel=lambda: True)
    assert not (finished_run.path / names.FIRST_LOOK_FILE).exists()


def test_only_finished_runs_of_answering_objectives_get_a_look(finished_run):
    finished_run.write_status(state="stopped")
    assert not first_look.wanted(finished_run)
    finished_run.write_status(state="finished")
    cfg = finished_run.config().with_value("method.objective", "reward")
    cfg.save(finished_run.config_path)
    try:
        assert not first_look.wanted(finished_run)
    finally:
        cfg.with_value("method.objective", "sft").save(finished_run.config_path)


def test_look_lines_cut_long_answers_to_the_width():
    look = {
        "loss": {"base": 2.0, "tuned": 1.5},
        "rows": 4,
        "pairs": [{"prompt": "Hi!", "base": "x " * 80, "tuned": "Hello! I'm Sparky."}],
    }
    lines = first_look.look_lines(look, 30)
    assert lines[0].startswith("held-out loss 2.000 →") and lines[0].endswith("…")
    assert all(len(line) <= 30 for line in lines)
    assert lines[-2].endswith("…") and lines[-1] == "  tuned: Hello! I'm Sparky."
