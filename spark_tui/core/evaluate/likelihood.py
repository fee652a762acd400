"""Loss, perplexity and log-probabilities of held-out tokens under one side of a run.

The loss is the mean negative log-likelihood per trained token, token-weighted
over the whole split (a long answer counts more than a short one), exactly what
the trainer's eval loss estimates; the perplexity is ``exp`` of it.  The same
sums give the log-probabilities of preference answers, and `reward_scores` the
scores of a reward model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from spark_tui.core.evaluate.heldout import batches
from spark_tui.core.evaluate.models import RunModels, model_device
from spark_tui.core.evaluate.progress import Steps


def token_nll(
    model: Any, encoded: Sequence[tuple[list[int], list[int]]], pad_id: int, device: str
) -> list[tuple[float, int]]:
    """(sum of NLL over labelled tokens, number of labelled tokens) per row, in one batch."""
    import torch
    import torch.nn.functional as F

    n = len(encoded)
    width = max(len(ids) for ids, _ in encoded)
    ids_t = torch.full((n, width), int(pad_id), dtype=torch.long)
    lab_t = torch.full((n, width), -100, dtype=torch.long)
    att_t = torch.zeros((n, width), dtype=torch.long)
    for i, (ids, labels) in enumerate(encoded):
        ids_t[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        lab_t[i, : len(labels)] = torch.tensor(labels, dtype=torch.long)
        att_t[i, : len(ids)] = 1
    dev = model_device(model, device)
    with torch.inference_mode():
        out = model(input_ids=ids_t.to(dev), attention_mask=att_t.to(dev), use_cache=False)
        logits = out.logits[:, -width:, :]  # prompt tuning prepends virtual tokens
        shift_logits = logits[:, :-1, :].float()
        shift_labels = lab_t[:, 1:].to(shift_logits.device)
        nll = F.cross_entropy(
            shift_logits.transpose(1, 2), shift_labels, ignore_index=-100, reduction="none"
        )
        mask = shift_labels != -100
        sums = (nll * mask).sum(dim=1).tolist()
        counts = mask.sum(dim=1).tolist()
    return [(float(s), int(c)) for s, c in zip(sums, counts, strict=True)]


def reward_scores(model: Any, texts: Sequence[str], tok: Any, device: str) -> list[float]:
    """Scores of a reward model (a 1-label sequence classifier) for full texts."""
    import torch

    enc = tok(list(texts), add_special_tokens=False, padding=True, return_tensors="pt")
    dev = model_device(model, device)
    with torch.inference_mode():
        out = model(
            input_ids=enc["input_ids"].to(dev), attention_mask=enc["attention_mask"].to(dev)
        )
    return [float(x) for x in out.logits[:, 0].float().tolist()]


def perplexity(loss: float | None) -> float | None:
    if loss is None or not math.isfinite(loss):
        return None
    try:
        return math.exp(loss)
    except OverflowError:
        return float("inf")


def loss_over(
    models: RunModels,
    side: str,
    encoded: list[tuple[list[int], list[int]]],
    batch_size: int,
    steps: Steps,
) -> dict[str, Any]:
    total = 0.0
    count = 0
    pad = models.tokenizer.pad_token_id if models.tokenizer.pad_token_id is not None else 0
    with models.use(side) as model:
        for chunk in batches(encoded, batch_size):
            for s, c in token_nll(model, chunk, pad, models.device):
                total += s
                count += c
            steps.advance(len(chunk), f"{side}: loss on held-out rows")
    loss = total / count if count else None
    return {"loss": loss, "perplexity": perplexity(loss), "tokens": count}


def logps(
    models: RunModels,
    side: str,
    encoded: list[tuple[list[int], list[int]]],
    batch_size: int,
    steps: Steps,
) -> list[tuple[float, int]]:
    """(sum log-prob, tokens) of each completion under one side."""
    out: list[tuple[float, int]] = []
    pad = models.tokenizer.pad_token_id if models.tokenizer.pad_token_id is not None else 0
    with models.use(side) as model:
        for chunk in batches(encoded, batch_size):
            out.extend((-s, c) for s, c in token_nll(model, chunk, pad, models.device))
            steps.advance(len(chunk), f"{side}: log-probs of preference answers")
    return out
