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

from spark_tui.core.evaluate.heldout import length_batches
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
    shift_labels = lab_t[:, 1:]
    kw: dict[str, Any] = {}
    if _keeps_logits(model):
        # Logits only where some row has an answer token to predict: the model never
        # computes the prompts' (vocabulary-wide) logits at all.
        keep = (shift_labels != -100).any(dim=0).nonzero()[:, 0]
        kw["logits_to_keep"] = keep.to(dev)
        shift_labels = shift_labels[:, keep]
    with torch.inference_mode():
        out = model(input_ids=ids_t.to(dev), attention_mask=att_t.to(dev), use_cache=False, **kw)
        logits = out.logits if kw else out.logits[:, -width:, :][:, :-1, :]
        # (prompt tuning prepends virtual tokens: hence the last `width` positions)
        shift_labels = shift_labels.to(logits.device)
        mask = shift_labels != -100
        # Only the labelled positions go to fp32 and through the cross-entropy.
        picked = logits[mask].float()
        nll = F.cross_entropy(picked, shift_labels[mask], reduction="none")
        row_of = mask.nonzero()[:, 0]
        sums = torch.zeros(n, dtype=torch.float64, device=nll.device)
        sums.index_add_(0, row_of, nll.double())
        counts = mask.sum(dim=1).tolist()
    return [(float(s), int(c)) for s, c in zip(sums.tolist(), counts, strict=True)]


def _keeps_logits(model: Any) -> bool:
    """Does the causal LM take a `logits_to_keep` index tensor (transformers >= 4.50)?
    Not through prompt learning, whose virtual tokens shift every position."""
    import inspect

    if getattr(model, "peft_config", None) and getattr(model, "active_peft_config", None):
        if getattr(model.active_peft_config, "is_prompt_learning", False):
            return False
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return "logits_to_keep" in inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False


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


def token_budget(model: Any, device: str) -> int:
    """Padded tokens per scoring batch: the fp32 logits (and their cross-entropy
    copy) of one batch stay near 512 MB on a CPU, 2 GB on a GPU, whatever the vocabulary."""
    vocab = int(getattr(getattr(model, "config", None), "vocab_size", 0) or 32000)
    budget = (2 << 30) if str(device).startswith("cuda") else (512 << 20)
    return max(256, budget // (vocab * 4 * 2))


def nll_rows(
    models: RunModels,
    side: str,
    encoded: list[tuple[list[int], list[int]]],
    batch_size: int,
    steps: Steps,
    message: str,
) -> list[tuple[float, int]]:
    """(sum of NLL, labelled tokens) of every row under one side, in input order.

    Rows are scored in length-sorted batches (`length_batches`) of up to
    4 × `batch_size` rows within a logits budget: one pass, little padding.
    """
    out: list[tuple[float, int]] = [(0.0, 0)] * len(encoded)
    pad = models.tokenizer.pad_token_id if models.tokenizer.pad_token_id is not None else 0
    steps.begin(message)
    with models.use(side) as model:
        groups = length_batches(
            [len(ids) for ids, _ in encoded], 4 * max(1, batch_size), token_budget(model, models.device)
        )
        for idx in groups:
            for i, sc in zip(idx, token_nll(model, [encoded[i] for i in idx], pad, models.device), strict=True):
                out[i] = sc
            steps.advance(len(idx), message, of=len(encoded))
    return out


def loss_over(
    models: RunModels,
    side: str,
    encoded: list[tuple[list[int], list[int]]],
    batch_size: int,
    steps: Steps,
) -> dict[str, Any]:
    rows = nll_rows(models, side, encoded, batch_size, steps, f"{side}: loss on held-out rows")
    total = sum(s for s, _ in rows)
    count = sum(c for _, c in rows)
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
    rows = nll_rows(
        models, side, encoded, batch_size, steps, f"{side}: log-probs of preference answers"
    )
    return [(-s, c) for s, c in rows]
