"""Loss on a tiny real run: our token-weighted NLL equals transformers' own loss."""

from __future__ import annotations

import conftest_eval
import pytest

from spark_tui.core.evaluate.heldout import Encoder, load_split
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
