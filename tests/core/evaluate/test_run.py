"""A whole evaluation of a tiny real SFT run: scores, eval.json, progress, cancel, the CLI."""

from __future__ import annotations

import json
import math

import conftest_eval
import pytest

from spark_tui.core.base import names
from spark_tui.core.evaluate.errors import EvalCancelled
from spark_tui.core.evaluate.results import headline, load_eval
from spark_tui.core.evaluate.run import EvalOptions, evaluate_run
from spark_tui.core.evaluate.scores import text_scores

# Session fixtures shared with the other evaluate-area tests.
eval_root = conftest_eval.eval_root
sft_models = conftest_eval.sft_models
sft_run = conftest_eval.sft_run


def test_evaluate_sft_run(sft_run, sft_models, capfd):
    import warnings

    seen: list[tuple[float, str]] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate_run(
            sft_run,
            EvalOptions(max_prompts=2, max_new_tokens=8, max_length=128),
            progress=lambda f, m: seen.append((f, m)),
            models=sft_models,
        )
    out, err = capfd.readouterr()
    assert out == "" and err == "", "evaluation must print nothing"
    assert [str(w.message) for w in caught] == []

    for side in ("base", "tuned"):
        block = result[side]
        assert block["tokens"] > 0
        assert block["perplexity"] == pytest.approx(math.exp(block["loss"]), rel=1e-9)
        for key in ("rouge1", "rouge2", "rougeL"):
            assert 0.0 <= block[key] <= 1.0
        assert 0.0 <= block["bleu"] <= 100.0
    # The adapter was trained on these rows: it is closer to them than the base.
    assert result["tuned"]["loss"] < result["base"]["loss"]

    assert len(result["samples"]) == 2
    for s in result["samples"]:
        assert s["reference"] and isinstance(s["base"], str) and isinstance(s["tuned"], str)
        assert s["tuned_scores"] == text_scores(s["tuned"], s["reference"])
        assert s["base_scores"] == text_scores(s["base"], s["reference"])
    assert result["loss_on"] == "assistant tokens"

    saved = json.loads((sft_run.path / names.EVAL_FILE).read_text())
    assert saved["tuned"] == pytest.approx(result["tuned"])
    assert load_eval(sft_run)["run_id"] == sft_run.id
    assert headline(saved)["rougeL"] == result["tuned"]["rougeL"]

    fracs = [f for f, _ in seen]
    assert fracs == sorted(fracs) and fracs[-1] == 1.0


def test_cancel_stops_without_writing(sft_run, sft_models):
    before = (
        (sft_run.path / names.EVAL_FILE).read_bytes()
        if (sft_run.path / names.EVAL_FILE).exists()
        else None
    )
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    with pytest.raises(EvalCancelled):
        evaluate_run(
            sft_run,
            EvalOptions(max_prompts=1, max_new_tokens=4),
            cancel=cancel,
            models=sft_models,
        )
    after = (
        (sft_run.path / names.EVAL_FILE).read_bytes()
        if (sft_run.path / names.EVAL_FILE).exists()
        else None
    )
    assert before == after


def test_cli_eval_json(sft_run, capsys):
    from spark_tui.cli import main

    code = main(
        [
            "eval",
            str(sft_run.path),
            "--json",
            "--max-prompts",
            "1",
            "--max-new-tokens",
            "4",
            "--no-base",
        ]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert "base" not in data and data["tuned"]["perplexity"] > 1.0
    assert len(data["samples"]) == 1 and "tuned" in data["samples"][0]


def test_print_eval_shows_base_and_tuned(capsys):
    from spark_tui.commands.evaluate import print_eval

    result = {
        "run_id": "r1",
        "split": "validation",
        "loss_on": "assistant tokens",
        "base": {"loss": 2.0, "perplexity": 7.39, "rougeL": 0.1, "bleu": 1.0},
        "tuned": {"loss": 1.0, "perplexity": 2.72, "rougeL": 0.5, "bleu": 20.0},
        "samples": [
            {
                "prompt": "Who are you?",
                "reference": "I'm Sparky.",
                "base": "I am an AI.",
                "tuned": "I'm Sparky.",
                "base_scores": {"rougeL": 0.0},
                "tuned_scores": {"rougeL": 1.0},
            }
        ],
    }
    print_eval(result)
    out = capsys.readouterr().out
    assert "base" in out and "tuned" in out and "ROUGE-L" in out
    assert "0.500" in out and "I'm Sparky." in out
