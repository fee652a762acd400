"""SFT labels from the preview's own spans: what the Dataset step marks trained is what trains.

TRL's assistant-only loss needs a chat template with ``{% generation %}``
markers, and with none it trains on the whole conversation.  Rather than trust
each template family to be marked the same way by TRL and by the preview,
chat rows reach the trainer already tokenized, with ``labels`` set to -100
wherever the preview (`preview.conversation_spans`) shows the text as not
trained.  TRL keeps a dataset's own ``labels`` column as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spark_tui.core.data.preview import conversation_spans, token_states
from spark_tui.core.data.templates import TemplateChoice

IGNORE = -100  # the label PyTorch's cross-entropy skips


@dataclass
class Labelled:
    """A tokenized split and what happened on the way."""

    dataset: Any
    dropped: int  # rows whose template rendering hid every answer (nothing to train on)
    method: str  # how the trained spans were found (as the preview says it)


def sft_labels(
    row: dict[str, Any], tokenizer: Any, template: str | TemplateChoice | None = None
) -> dict[str, list[int]] | None:
    """``input_ids`` and ``labels`` of one chat row; None when no token of it would train."""
    (_part, text, spans, _method), *_ = conversation_spans(row, tokenizer, template)
    ids, _offsets, states = token_states(text, spans, tokenizer)
    if not any(states):
        return None
    return {"input_ids": ids, "labels": [t if s else IGNORE for t, s in zip(ids, states, strict=True)]}


def label_dataset(
    dataset: Any, tokenizer: Any, template: str | TemplateChoice | None = None
) -> Labelled:
    """A prepared chat split as ``input_ids`` + ``labels`` rows (the other columns dropped)."""
    from datasets import Dataset

    rows: list[dict[str, list[int]]] = []
    dropped = 0
    method = ""
    for row in dataset:
        if not method:
            method = conversation_spans(row, tokenizer, template)[0][3]
        out = sft_labels(row, tokenizer, template)
        if out is None:
            dropped += 1
        else:
            rows.append(out)
    return Labelled(Dataset.from_list(rows), dropped, method)
