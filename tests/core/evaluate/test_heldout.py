"""The held-out split: assistant-only labels, and a run without prepared data."""

from __future__ import annotations

import pytest

from spark_tui.core.evaluate.errors import EvalError
from spark_tui.core.evaluate.heldout import Encoder
from spark_tui.core.evaluate.models import RunModels, resolve_template
from spark_tui.core.evaluate.run import evaluate_run


def test_only_assistant_tokens_are_labelled(default_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(default_model_dir)
    template, training = resolve_template(tok)
    models = RunModels(
        run=None, tokenizer=tok, template=template, training_template=training, model=None,
        device="cpu", kind="base", task="causal", base_path=str(default_model_dir),
    )  # fmt: skip
    enc = Encoder(models, max_length=512)
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
    short_ids, short_labels = Encoder(models, max_length=10).conversation(conv)
    assert len(short_ids) == len(short_labels) == 10


def test_run_without_data_says_what_to_do(tmp_path):
    from spark_tui.config import RunConfig
    from spark_tui.core.train.runs import create_run

    run = create_run(RunConfig(name="empty"), root=tmp_path)
    with pytest.raises(EvalError, match="train it"):
        evaluate_run(run)
