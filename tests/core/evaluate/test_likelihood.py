"""Loss on a tiny real run: our token-weighted NLL equals transformers' own loss."""

from __future__ import annotations

import conftest_eval
import pytest

from spark_tui.core.evaluate.heldout import Encoder, length_batches, load_split
from spark_tui.core.evaluate.likelihood import token_nll

# Session fixtures shared with the other evaluate-area tests.
eval_root = conftest_eval.eval_root
sft_models = conftest_eval.sft_models
sft_run = conftest_eval.sft_run


def test_loss_matches_the_model_own_loss(sft_run, sft_models):
    """Our token-weighted loss on one row equals transformers' loss with the same labels."""
    import torch

    ds = load_split(sft_run)
    enc = Encoder(sft_models, max_length=128)
    ids, labels = enc.conversation(list(ds[0]["messages"]))
    with sft_models.use("tuned") as model:
        ((s, c),) = token_nll(model, [(ids, labels)], sft_models.tokenizer.pad_token_id, "cpu")
        with torch.inference_mode():
            ref = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss.item()
    assert c == sum(1 for x in labels[1:] if x != -100)
    assert s / c == pytest.approx(ref, rel=1e-4)


def test_a_padded_batch_scores_each_row_as_alone(sft_run, sft_models):
    """Rows of different lengths in one batch (logits kept only where answers are) give
    every row the loss transformers computes for it alone."""
    import torch

    ds = load_split(sft_run)
    enc = Encoder(sft_models, max_length=128)
    rows = [enc.conversation(list(ds[i]["messages"])) for i in range(min(4, len(ds)))]
    assert len({len(ids) for ids, _ in rows}) > 1  # really padded
    with sft_models.use("tuned") as model:
        got = token_nll(model, rows, sft_models.tokenizer.pad_token_id, "cpu")
        for (ids, labels), (s, c) in zip(rows, got, strict=True):
            with torch.inference_mode():
                ref = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss
            assert c == sum(1 for x in labels[1:] if x != -100)
            assert s / c == pytest.approx(ref.item(), rel=1e-3)


def test_length_batches_cover_every_row_once_within_the_budget():
    lengths = [5, 300, 40, 41, 39, 300, 2, 120]
    groups = length_batches(lengths, max_rows=3, max_tokens=400)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for g in groups:
        assert len(g) <= 3
        assert len(g) == 1 or max(lengths[i] for i in g) * len(g) <= 400
    assert groups[0][0] in (1, 5)  # longest first
