"""The held-out split of a run and its encoding for scoring.

`load_split(run)` reads the prepared DatasetDict the training engine saved in
``<run>/data``.  `Encoder` turns its rows into token ids with labels on the
trained tokens only: as in training, only the assistant tokens count.  The chat
template's ``{% generation %}`` markers (or its training twin) say which
characters are the answers; templates without markers fall back to "everything
after the rendered prompt of each answer".
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from spark_tui.core.evaluate.errors import EvalError
from spark_tui.core.evaluate.models import RunModels
from spark_tui.core.evaluate.quiet import quiet
from spark_tui.core.train.runs import Run


def load_split(run: Run, split: str = "validation") -> Any:
    """The run's prepared split (a datasets.Dataset), or an EvalError saying what to do."""
    folder = run.data_dir
    if not (folder / "dataset_dict.json").exists():
        raise EvalError(
            f"run {run.id} has no prepared data in {folder}; train it (the training "
            "step prepares and saves the data) before evaluating"
        )
    from spark_tui.core.data.output import read_prepared

    with quiet():
        dd = read_prepared(folder)
    if split not in dd or len(dd[split]) == 0:
        raise EvalError(
            f"run {run.id} has no {split} rows; set data.val_fraction above 0 "
            "(or data.validation_path) and train again to evaluate on held-out data"
        )
    return dd[split]


def data_layout(ds: Any) -> str:
    cols = set(ds.column_names)
    if "messages" in cols:
        return "messages"
    if "chosen" in cols and "rejected" in cols:
        return "preference"
    if "completion" in cols:
        return "kto"
    if "text" in cols:
        return "text"
    raise EvalError(f"unknown prepared data layout with columns {sorted(cols)}")


class Encoder:
    """Turns rows into token ids with labels on the trained (assistant) tokens only."""

    def __init__(self, models: RunModels, max_length: int) -> None:
        from spark_tui.core.data.templates import Renderer

        self.tok = models.tokenizer
        self.max_length = max_length
        self.template = models.template
        self.renderer = Renderer(models.template, self.tok)

    def prompt_text(self, messages: list[dict[str, str]]) -> str:
        return self.renderer.render(messages, add_generation_prompt=True)

    def conversation(self, conv: list[dict[str, str]]) -> tuple[list[int], list[int]]:
        """(input_ids, labels) for a conversation, -100 outside the answers: the same
        spans the Dataset step's preview draws and the trainer's labels come from."""
        from spark_tui.core.data.preview import conversation_spans, token_states

        ((_part, text, spans, _how),) = conversation_spans({"messages": conv}, self.tok, self.template)
        ids, _offsets, states = token_states(text, spans, self.tok)
        ids = ids[: self.max_length]
        return ids, [t if s else -100 for t, s in zip(ids, states, strict=False)]

    def text(self, text: str) -> tuple[list[int], list[int]]:
        eos = self.tok.eos_token if isinstance(self.tok.eos_token, str) else ""
        ids = list(self.tok(text + eos, add_special_tokens=False)["input_ids"])[: self.max_length]
        return ids, list(ids)

    def completion(
        self, prompt: list[dict[str, str]], completion: list[dict[str, str]]
    ) -> tuple[list[int], list[int]]:
        """Prompt rendered with the generation prompt, then the completion (as TRL does)."""
        ptext = self.prompt_text(prompt)
        full = self.renderer.render(prompt + completion)
        ctext = full[len(ptext) :] if full.startswith(ptext) else full
        p_ids = list(self.tok(ptext, add_special_tokens=False)["input_ids"])
        c_ids = list(self.tok(ctext, add_special_tokens=False)["input_ids"])
        keep_c = max(1, min(len(c_ids), self.max_length // 2, self.max_length - len(p_ids)))
        c_ids = c_ids[:keep_c]
        p_ids = (
            p_ids[-(self.max_length - len(c_ids)) :]
            if len(p_ids) + len(c_ids) > self.max_length
            else p_ids
        )
        return p_ids + c_ids, [-100] * len(p_ids) + c_ids


def length_batches(lengths: Sequence[int], max_rows: int, max_tokens: int) -> list[list[int]]:
    """Row indices in batches of similar length, at most `max_rows` rows and
    `max_tokens` padded tokens each (one row alone may exceed it).

    Rows in input order pad every batch to its longest row; sorted, the padding
    nearly vanishes and larger batches fit the same memory.  Longest first, so a
    batch that does not fit fails at once rather than at the end.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    out: list[list[int]] = []
    cur: list[int] = []
    width = 0
    for i in order:
        if cur and (len(cur) >= max_rows or max(width, lengths[i]) * (len(cur) + 1) > max_tokens):
            out.append(cur)
            cur, width = [], 0
        cur.append(i)
        width = max(width, lengths[i])
    if cur:
        out.append(cur)
    return out


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    size = max(1, int(size))
    for i in range(0, len(items), size):
        yield items[i : i + size]
