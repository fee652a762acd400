"""Batched answers: base and tuned rows sharing one generate call answer as each side alone."""

from __future__ import annotations

import conftest_eval

from spark_tui.core.evaluate.generate import generate_answers, generate_both
from spark_tui.core.evaluate.heldout import load_split

eval_root = conftest_eval.eval_root
sft_models = conftest_eval.sft_models
sft_run = conftest_eval.sft_run


def _prompts(run, n: int) -> list[list[dict[str, str]]]:
    ds = load_split(run)
    out = []
    for i in range(len(ds)):
        conv = list(ds[i]["messages"])
        last = max(j for j, m in enumerate(conv) if m["role"] == "assistant")
        out.append(conv[:last])
    return out[:n]


def test_mixed_batches_answer_like_each_side_alone(sft_run, sft_models):
    assert sft_models.can_mix_sides  # a plain LoRA adapter
    prompts = _prompts(sft_run, 3)
    both = generate_both(sft_models, prompts, max_new_tokens=8, batch_size=2)
    for side in ("tuned", "base"):
        alone = generate_answers(sft_models, prompts, side=side, max_new_tokens=8, batch_size=1)
        assert both[side] == alone
    assert both["tuned"] != both["base"] or all(not a for a in both["base"])


def test_answers_come_back_in_the_prompts_order(sft_run, sft_models):
    prompts = _prompts(sft_run, 4)
    batched = generate_answers(sft_models, prompts, side="base", max_new_tokens=6, batch_size=4)
    one_by_one = [
        generate_answers(sft_models, [p], side="base", max_new_tokens=6)[0] for p in prompts
    ]
    assert batched == one_by_one
