"""Recipes from the course: raw -> Alpaca, ChatML, system prompts, preference pairs."""

from __future__ import annotations

import pytest

from spark_tui.core.data import DataError, detect_format
from spark_tui.core.data.recipes import (
    add_system_prompt,
    apply_template,
    generate_rejected,
    pairs_from_columns,
    raw_to_alpaca,
    write_jsonl,
)

RAW = [{"q": "What is LoRA?", "ctx": "", "a": "Low-rank adapters.", "persona": "tutor"}]


def test_raw_to_alpaca():
    rows = raw_to_alpaca(RAW, instruction="q", output="a", input="ctx", system="persona")
    assert rows == [
        {
            "instruction": "What is LoRA?",
            "input": "",
            "output": "Low-rank adapters.",
            "system": "tutor",
        }
    ]
    assert detect_format(rows).format == "alpaca"
    with pytest.raises(DataError, match="row 1 has no column 'answer'"):
        raw_to_alpaca(RAW, instruction="q", output="answer")


def test_apply_chatml():
    (row,) = apply_template(
        raw_to_alpaca(RAW, instruction="q", output="a"), system_prompt="Be brief."
    )
    assert row["text"] == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is LoRA?<|im_end|>\n"
        "<|im_start|>assistant\nLow-rank adapters.<|im_end|>\n"
    )


def test_add_system_prompt():
    alpaca = add_system_prompt([{"instruction": "x", "output": "y"}], "S")
    assert alpaca[0]["system"] == "S"
    msgs = add_system_prompt([{"messages": [{"role": "user", "content": "x"}]}], "S")
    assert msgs[0]["messages"][0] == {"role": "system", "content": "S"}
    share = add_system_prompt(
        [{"conversations": [{"from": "system", "value": "old"}]}], "S", overwrite=True
    )
    assert share[0]["conversations"] == [{"from": "system", "value": "S"}]
    kept = add_system_prompt([{"instruction": "x", "output": "y", "system": "mine"}], "S")
    assert kept[0]["system"] == "mine"


def test_pairs_from_two_answer_columns():
    rows = [{"question": "Q", "good": "yes", "meh": "no"}]
    pairs = pairs_from_columns(rows, prompt="question", chosen="good", rejected="meh")
    assert pairs == [{"prompt": "Q", "chosen": "yes", "rejected": "no"}]
    assert detect_format(pairs).format == "preference"


@pytest.mark.slow
def test_generate_rejected_with_the_base_model(default_model_dir, tokenizer):
    import torch
    from transformers import AutoModelForCausalLM

    from spark_tui.core.model.resolve import quiet_transformers

    with quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(default_model_dir, dtype=torch.float32)
    rows = [{"instruction": "Name a colour.", "output": "Blue."}, {"instruction": "Say hi.", "output": "Hi!"},
            {"instruction": "Count to two.", "output": "1, 2"}]  # fmt: skip
    seen = []
    pairs = generate_rejected(rows, model, tokenizer, max_new_tokens=3, batch_size=2,
                              progress=lambda s, d, t: seen.append((s, d, t)))  # fmt: skip
    assert len(pairs) == 3
    assert pairs[0]["prompt"] == [{"role": "user", "content": "Name a colour."}]
    assert pairs[0]["chosen"] == [{"role": "assistant", "content": "Blue."}]
    assert pairs[0]["rejected"][0]["role"] == "assistant"
    assert seen[-1] == ("generating", 3, 3)
    stopped = generate_rejected(
        rows, model, tokenizer, max_new_tokens=2, batch_size=1, should_stop=lambda: True
    )
    assert stopped == []


def test_write_jsonl_never_overwrites_the_source(tmp_path):
    src = tmp_path / "src.jsonl"
    write_jsonl(RAW, src)
    with pytest.raises(DataError, match="refusing to overwrite the source"):
        write_jsonl(RAW, src, source=src)
    out = write_jsonl(
        raw_to_alpaca(RAW, instruction="q", output="a"), tmp_path / "alpaca.jsonl", source=src
    )
    assert out.read_text().count("\n") == 1
