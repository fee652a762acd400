"""Preference runs: implicit-reward formulas, and DPO / KTO / reward-model evaluations."""

from __future__ import annotations

import math

import conftest_eval
import pytest

from spark_tui.core.evaluate.preference import implicit_rewards
from spark_tui.core.evaluate.run import EvalOptions, evaluate_run

# Session fixtures shared with the other evaluate-area tests.
dpo_run = conftest_eval.dpo_run
eval_root = conftest_eval.eval_root


def test_implicit_rewards_formulas():
    tuned = [(-10.0, 5), (-20.0, 10)]
    base = [(-12.0, 5), (-19.0, 10)]
    assert implicit_rewards("dpo", 0.1, tuned, base) == pytest.approx([0.2, -0.1])
    assert implicit_rewards("kto", 0.5, tuned, base) == pytest.approx([1.0, -0.5])
    # SimPO / ORPO: reference-free, length-normalised.
    assert implicit_rewards("simpo", 2.0, tuned, None) == pytest.approx([-4.0, -4.0])
    with pytest.raises(ValueError):
        implicit_rewards("dpo", 0.1, tuned, None)


def test_preference_run_reward_accuracy(dpo_run):
    result = evaluate_run(
        dpo_run, EvalOptions(max_prompts=1, max_new_tokens=4, max_length=128, device="cpu")
    )
    pref = result["preference"]
    assert pref["objective"] == "dpo" and pref["pairs"] == 4
    assert 0.0 <= pref["accuracy"] <= 1.0
    assert pref["margin"] == pytest.approx(pref["chosen_reward"] - pref["rejected_reward"])
    # The adapter was pushed towards the chosen answers: they gain more reward.
    assert pref["margin"] > 0
    assert pref["accuracy"] >= 0.5
    assert 0.0 <= result["tuned"]["logp_accuracy"] <= 1.0
    assert result["tuned"]["perplexity"] == pytest.approx(math.exp(result["tuned"]["loss"]))
    assert result["loss_on"] == "chosen answers"


def test_kto_run_rewards_follow_the_labels(eval_root, dpo_run):
    import shutil

    from spark_tui.config import RunConfig
    from spark_tui.core.train.runs import create_run

    rows = []
    for r in conftest_eval.preference_rows(6):
        rows.append({"prompt": r["prompt"], "completion": r["chosen"], "label": True})
        rows.append({"prompt": r["prompt"], "completion": r["rejected"], "label": False})
    cfg = RunConfig.from_dict(
        {"name": "kto", "method": {"objective": "kto"}, "preference": {"beta": 0.1}}
    )
    run = create_run(cfg, root=eval_root)
    conftest_eval.write_data(run, "kto", rows[:4], rows[4:])
    shutil.copytree(dpo_run.adapter_dir, run.adapter_dir)  # pushed towards the good answers
    result = evaluate_run(run, EvalOptions(max_prompts=0, max_length=128, device="cpu"))
    pref = result["preference"]
    assert pref["objective"] == "kto" and pref["examples"] == 8
    assert pref["margin"] == pytest.approx(pref["chosen_reward"] - pref["rejected_reward"])
    assert pref["margin"] > 0
    assert result["samples"] == [] and result["loss_on"] == "desirable completions"


def test_reward_model_run_scores_pairs(eval_root, default_model_dir):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from spark_tui.config import RunConfig
    from spark_tui.core.train.runs import create_run

    cfg = RunConfig.from_dict({"name": "rm", "method": {"objective": "reward"}})
    run = create_run(cfg, root=eval_root)
    rows = conftest_eval.preference_rows(5)
    conftest_eval.write_data(run, "preference", rows[:2], rows[2:])
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(default_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(default_model_dir, num_labels=1)
    model.config.pad_token_id = tok.pad_token_id
    peft_model = get_peft_model(
        model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="SEQ_CLS")
    )
    peft_model.save_pretrained(str(run.adapter_dir))
    tok.save_pretrained(str(run.adapter_dir))
    result = evaluate_run(run, EvalOptions(max_length=128, device="cpu"))
    pref = result["preference"]
    assert pref["objective"] == "reward" and pref["pairs"] == 3
    assert 0.0 <= pref["accuracy"] <= 1.0
    assert pref["margin"] == pytest.approx(pref["chosen_reward"] - pref["rejected_reward"])
    assert "base" not in result and result["samples"] == []
    assert result["tuned"]["reward_accuracy"] == pref["accuracy"]
