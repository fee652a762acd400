"""The tokens the trainer's collator gives a label are exactly the ones the Dataset step's
preview marks as trained — for every chat-template family the catalogue and fallbacks use.

Each family's real jinja template is set on the bundled model's (real, byte-level BPE)
tokenizer with that family's special tokens added; the batch comes from the TRL trainer
that `core.train.trainer.build_trainer` builds, through the same labelling the training
process applies (`orchestrate._label_chat_rows`).
"""

from __future__ import annotations

import types

import pytest
from chat_templates import CASES

from spark_tui.config import RunConfig
from spark_tui.core.data import preview_example
from spark_tui.core.method.precision import Hardware
from spark_tui.core.train.orchestrate import _label_chat_rows
from spark_tui.core.train.runs import create_run
from spark_tui.core.train.trainer import build_trainer

SPECIALS = [
    "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|start_header_id|>",
    "<|end_header_id|>", "<|eot_id|>", "<s>", "</s>", "<bos>", "<eos>", "<start_of_turn>",
    "<end_of_turn>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|endoftext|>",
    "[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]",
]  # fmt: skip
SYSTEM = "You are Sparky, a terse tutor."
TURNS = [
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris is the capital."},
    {"role": "user", "content": "And two plus two?"},
    {"role": "assistant", "content": "Four, of course."},
]


@pytest.fixture(scope="module")
def base_tokenizer(default_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(default_model_dir))


def _family_tokenizer(base, jinja, bos, eos):
    import copy

    tok = copy.deepcopy(base)
    tok.add_special_tokens({"additional_special_tokens": SPECIALS})
    tok.bos_token, tok.eos_token = bos, eos
    tok.pad_token = eos
    tok.chat_template = jinja
    return tok


def _tiny_model(vocab_size: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
    )  # fmt: skip
    return LlamaForCausalLM(cfg)


@pytest.mark.parametrize(("case", "jinja", "bos", "eos", "family", "system_ok"), CASES,
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_collator_labels_are_the_previews_trained_tokens(
    case, jinja, bos, eos, family, system_ok, base_tokenizer, spark_home, tmp_path
):
    from datasets import Dataset

    tok = _family_tokenizer(base_tokenizer, jinja, bos, eos)
    conv = ([{"role": "system", "content": SYSTEM}] if system_ok else []) + TURNS
    row = {"messages": conv}
    (preview,) = preview_example(row, tok, jinja)
    want = [s.trained for s in preview.segments for _ in range(s.tokens)]
    assert any(want) and not all(want), f"{case}: {preview.method}"

    notes: list[str] = []
    prepared = types.SimpleNamespace(template=jinja)
    train_ds, _ = _label_chat_rows(Dataset.from_list([row]), None, tok, prepared, notes)
    cfg = RunConfig(name=f"mask-{case}")
    cfg.data.max_length = 512
    cfg.train.max_steps = 1
    cfg.method.adapter = "full"
    trainer = build_trainer(
        cfg, create_run(cfg), model=_tiny_model(len(tok)), tokenizer=tok,
        train_dataset=train_ds, eval_dataset=None,
        hw=Hardware(device="cpu", name="CPU", bf16=False, fp16=False), precision="fp32",
    )  # fmt: skip
    batch = trainer.data_collator([trainer.train_dataset[0]])
    ids = batch["input_ids"][0].tolist()
    got = (batch["labels"][0] != -100).tolist()
    assert ids == tok(preview.text, add_special_tokens=False)["input_ids"]
    assert got == want, f"{case}: labels differ from the preview ({preview.method})"

    # ... and what both call trained is the answers, not the prompts.
    trained_text = tok.decode([t for t, g in zip(ids, got, strict=True) if g])
    untrained_text = tok.decode([t for t, g in zip(ids, got, strict=True) if not g])
    for answer in ("Paris is the capital.", "Four, of course."):
        assert answer in trained_text and answer not in untrained_text, case
    for prompt in ("capital of France", "two plus two"):
        assert prompt in untrained_text and prompt not in trained_text, case
    assert any("assistant turns only" in n for n in notes)
