"""Greedy answers of the base or the tuned model to held-out chat prompts.

The prompts are rendered with the run's chat template and the answers stop at
its end-of-turn tokens, as in chat; they are what the evaluation scores with
ROUGE / BLEU and what the blind A/B review shows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from spark_tui.core.evaluate.decoding import generation_config
from spark_tui.core.evaluate.heldout import Encoder, batches
from spark_tui.core.evaluate.models import RunModels, model_device


def generate_answers(
    models: RunModels,
    prompts: Sequence[list[dict[str, str]]],
    *,
    side: str = "tuned",
    max_new_tokens: int = 96,
    batch_size: int = 4,
    on_batch: Callable[[int], None] | None = None,
) -> list[str]:
    """Greedy answers of one side ("base" or "tuned") to chat prompts (message lists)."""
    import torch

    tok = models.tokenizer
    enc = Encoder(models, max_length=1 << 30)
    texts = [enc.prompt_text(p) for p in prompts]
    gen_cfg = generation_config(
        tok, models.stop_ids, temperature=0.0, top_p=1.0, max_new_tokens=max_new_tokens
    )
    answers: list[str] = []
    old_side = tok.padding_side
    tok.padding_side = "left"
    try:
        with models.use(side) as model:
            dev = model_device(model, models.device)
            for chunk in batches(texts, batch_size):
                batch = tok(
                    list(chunk), add_special_tokens=False, padding=True, return_tensors="pt"
                )
                with torch.inference_mode():
                    out = model.generate(
                        input_ids=batch["input_ids"].to(dev),
                        attention_mask=batch["attention_mask"].to(dev),
                        generation_config=gen_cfg,
                    )
                new = out[:, batch["input_ids"].shape[1] :]
                for row in new:
                    answers.append(tok.decode(row, skip_special_tokens=True).strip())
                if on_batch is not None:
                    on_batch(len(chunk))
    finally:
        tok.padding_side = old_side
    return answers
