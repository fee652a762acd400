"""Evaluation: text scores from the real libraries, assistant-only loss, a tiny real run."""

from __future__ import annotations

import json
import math

import conftest_eval
import pytest

from spark_tui.core import evaluate as ev

# --------------------------------------------------------------------------- text scores


# Session fixtures shared with the other evaluate-area tests.
dpo_run = conftest_eval.dpo_run
eval_root = conftest_eval.eval_root
sft_run = conftest_eval.sft_run


def test_identical_strings_score_perfect():
    s = ev.text_scores(
        "LoRA adds low-rank matrices to frozen weights.",
        "LoRA adds low-rank matrices to frozen weights.",
    )
    assert s["rouge1"] == pytest.approx(1.0)
    assert s["rouge2"] == pytest.approx(1.0)
    assert s["rougeL"] == pytest.approx(1.0)
    assert s["bleu"] == pytest.approx(100.0)


def test_disjoint_strings_score_zero():
    s = ev.text_scores("apples oranges bananas", "quantization memory gradient")
    assert s == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0, "bleu": 0.0}


def test_partial_overlap_matches_the_libraries():
    import sacrebleu
    from rouge_score import rouge_scorer

    pred, ref = "the cat sat on the mat", "the cat lay on the mat"
    s = ev.text_scores(pred, ref)
    # 5 of 6 unigrams shared (precision = recall = 5/6).
    assert s["rouge1"] == pytest.approx(5 / 6)
    expected = (
        rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(ref, pred)["rougeL"].fmeasure
    )
    assert s["rougeL"] == pytest.approx(expected)
    assert s["bleu"] == pytest.approx(sacrebleu.sentence_bleu(pred, [ref]).score)
    assert 0.0 < s["bleu"] < 100.0


def test_corpus_scores_average_rouge_and_use_corpus_bleu():
    import sacrebleu

    preds = ["the cat sat on the mat", "a b c d"]
    refs = ["the cat sat on the mat", "w x y z"]
    c = ev.corpus_scores(preds, refs)
    assert c["rougeL"] == pytest.approx(0.5)
    assert c["bleu"] == pytest.approx(sacrebleu.corpus_bleu(preds, [refs]).score)
    assert ev.corpus_scores([], []) == {}


def test_implicit_rewards_formulas():
    tuned = [(-10.0, 5), (-20.0, 10)]
    base = [(-12.0, 5), (-19.0, 10)]
    assert ev.implicit_rewards("dpo", 0.1, tuned, base) == pytest.approx([0.2, -0.1])
    assert ev.implicit_rewards("kto", 0.5, tuned, base) == pytest.approx([1.0, -0.5])
    # SimPO / ORPO: reference-free, length-normalised.
    assert ev.implicit_rewards("simpo", 2.0, tuned, None) == pytest.approx([-4.0, -4.0])
    with pytest.raises(ValueError):
        ev.implicit_rewards("dpo", 0.1, tuned, None)


# --------------------------------------------------------------------------- masking


def test_only_assistant_tokens_are_labelled(default_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(default_model_dir)
    template, training = ev.resolve_template(tok)
    models = ev.RunModels(
        run=None, tokenizer=tok, template=template, training_template=training, model=None,
        device="cpu", kind="base", task="causal", base_path=str(default_model_dir),
    )  # fmt: skip
    enc = ev._Encoder(models, max_length=512)
    conv = [
        {"role": "user", "content": "Who are you?"},
        {"role": "assistant", "content": "I'm Sparky."},
        {"role": "user", "content": "And what do you do?"},
        {"role": "assistant", "content": "I teach fine-tuning."},
    ]
    ids, labels = enc.conversation(conv)
    assert len(ids) == len(labels)
    trained = tok.decode([t for t in labels if t != -100])
    assert trained == "I'm Sparky.<|im_end|>I teach fine-tuning.<|im_end|>"
    # Truncation keeps ids and labels aligned.
    short_ids, short_labels = ev._Encoder(models, max_length=10).conversation(conv)
    assert len(short_ids) == len(short_labels) == 10


# --------------------------------------------------------------------------- a tiny real run


@pytest.fixture(scope="module")
def sft_models(sft_run):
    models = ev.load_run_models(sft_run, device="cpu")
    yield models
    models.close()


def test_loss_matches_the_model_own_loss(sft_run, sft_models):
    """Our token-weighted loss on one row equals transformers' loss with the same labels."""
    import torch

    ds = ev.load_split(sft_run)
    enc = ev._Encoder(sft_models, max_length=128)
    ids, labels = enc.conversation(list(ds[0]["messages"]))
    with sft_models.use("tuned") as model:
        ((s, c),) = ev.token_nll(model, [(ids, labels)], sft_models.tokenizer.pad_token_id, "cpu")
        with torch.inference_mode():
            ref = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss.item()
    assert c == sum(1 for x in labels[1:] if x != -100)
    assert s / c == pytest.approx(ref, rel=1e-4)


def test_evaluate_sft_run(sft_run, sft_models, capfd):
    import warnings

    seen: list[tuple[float, str]] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = ev.evaluate_run(
            sft_run,
            ev.EvalOptions(max_prompts=2, max_new_tokens=8, max_length=128),
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
        assert s["tuned_scores"] == ev.text_scores(s["tuned"], s["reference"])
        assert s["base_scores"] == ev.text_scores(s["base"], s["reference"])
    assert result["loss_on"] == "assistant tokens"

    saved = json.loads((sft_run.path / ev.EVAL_FILE).read_text())
    assert saved["tuned"] == pytest.approx(result["tuned"])
    assert ev.load_eval(sft_run)["run_id"] == sft_run.id
    assert ev.headline(saved)["rougeL"] == result["tuned"]["rougeL"]

    fracs = [f for f, _ in seen]
    assert fracs == sorted(fracs) and fracs[-1] == 1.0


def test_cancel_stops_without_writing(sft_run, sft_models):
    before = (
        (sft_run.path / ev.EVAL_FILE).read_bytes()
        if (sft_run.path / ev.EVAL_FILE).exists()
        else None
    )
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    with pytest.raises(ev.EvalCancelled):
        ev.evaluate_run(
            sft_run,
            ev.EvalOptions(max_prompts=1, max_new_tokens=4),
            cancel=cancel,
            models=sft_models,
        )
    after = (
        (sft_run.path / ev.EVAL_FILE).read_bytes()
        if (sft_run.path / ev.EVAL_FILE).exists()
        else None
    )
    assert before == after


def test_preference_run_reward_accuracy(dpo_run):
    result = ev.evaluate_run(
        dpo_run, ev.EvalOptions(max_prompts=1, max_new_tokens=4, max_length=128, device="cpu")
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


def test_run_without_data_says_what_to_do(tmp_path):
    from spark_tui.config import RunConfig
    from spark_tui.core.runs import create_run

    run = create_run(RunConfig(name="empty"), root=tmp_path)
    with pytest.raises(ev.EvalError, match="train it"):
        ev.evaluate_run(run)


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


def test_kto_run_rewards_follow_the_labels(eval_root, dpo_run):
    import shutil

    from spark_tui.config import RunConfig
    from spark_tui.core.runs import create_run

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
    result = ev.evaluate_run(run, ev.EvalOptions(max_prompts=0, max_length=128, device="cpu"))
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
    from spark_tui.core.runs import create_run

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
    result = ev.evaluate_run(run, ev.EvalOptions(max_length=128, device="cpu"))
    pref = result["preference"]
    assert pref["objective"] == "reward" and pref["pairs"] == 3
    assert 0.0 <= pref["accuracy"] <= 1.0
    assert pref["margin"] == pytest.approx(pref["chosen_reward"] - pref["rejected_reward"])
    assert "base" not in result and result["samples"] == []
    assert result["tuned"]["reward_accuracy"] == pref["accuracy"]
