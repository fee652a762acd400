"""Recipes from the course (Lab 3.1.6 "Dataset preparation").

- `raw_to_alpaca`: any rows -> Alpaca (``instruction``/``input``/``output``)
- `apply_template`: render conversations to plain text with ChatML (or any template)
- `add_system_prompt`: put a system prompt into every row
- `pairs_from_columns`: preference pairs from two answer columns
- `generate_rejected`: preference pairs from an instruction set, the rejected
  answer sampled from the base model (slow: run it in a worker; it reports
  progress and can be stopped)
- `write_jsonl`: save a recipe's rows (never over the file they came from)

Every recipe returns new rows; the input rows and files are never modified.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from spark_tui.core.data.errors import DataError
from spark_tui.core.data.formats import apply_column_map, detect_format
from spark_tui.core.data.normalize import text_of, to_unit
from spark_tui.core.data.templates import CHATML_TEMPLATE, Renderer

Rows = list[dict[str, Any]]


def _need(row: dict[str, Any], col: str, i: int) -> Any:
    if col not in row:
        raise DataError(f"row {i + 1} has no column {col!r}; its columns are {', '.join(row)}")
    return row[col]


def raw_to_alpaca(
    rows: Iterable[dict[str, Any]],
    *,
    instruction: str,
    output: str,
    input: str | None = None,  # noqa: A002 - the Alpaca field name
    system: str | None = None,
) -> Rows:
    """Rows with arbitrary column names -> Alpaca rows (empty ``input`` when there is none)."""
    out: Rows = []
    for i, row in enumerate(rows):
        item = {
            "instruction": text_of(_need(row, instruction, i)) or "",
            "input": (text_of(row.get(input)) or "") if input else "",
            "output": text_of(_need(row, output, i)) or "",
        }
        if system and text_of(row.get(system)):
            item["system"] = text_of(row.get(system))
        out.append(item)
    return out


def _conversations(
    rows: Rows, fmt: str = "auto", system_prompt: str = ""
) -> list[list[dict[str, str]]]:
    det = detect_format(rows, override=fmt)
    convs = []
    for i, row in enumerate(rows):
        unit, issues = to_unit(apply_column_map(row, det.column_map), det.format, system_prompt)
        if unit is None or "messages" not in unit:
            why = "; ".join(d for _, d in issues) or "not an instruction row"
            raise DataError(f"row {i + 1} cannot be used: {why}")
        convs.append(unit["messages"])
    return convs


def apply_template(
    rows: Rows,
    *,
    template: str = CHATML_TEMPLATE,
    tokenizer: Any = None,
    system_prompt: str = "",
    fmt: str = "auto",
) -> Rows:
    """Render instruction rows (any format) to ``{"text": ...}`` with a chat template (ChatML by default)."""
    renderer = Renderer(template, tokenizer)
    return [{"text": renderer.render(c)} for c in _conversations(rows, fmt, system_prompt)]


def add_system_prompt(rows: Rows, prompt: str, *, overwrite: bool = False) -> Rows:
    """Add a system prompt to Alpaca rows (``system``) or conversations (a first system turn)."""
    out: Rows = []
    for row in rows:
        row = dict(row)
        for key in ("messages", "conversations"):
            turns = row.get(key)
            if isinstance(turns, list):
                style_from = bool(turns) and isinstance(turns[0], dict) and "from" in turns[0]
                rk, ck = ("from", "value") if style_from else ("role", "content")
                has = bool(turns) and isinstance(turns[0], dict) and turns[0].get(rk) == "system"
                if has and overwrite:
                    turns = [{rk: "system", ck: prompt}, *turns[1:]]
                elif not has:
                    turns = [{rk: "system", ck: prompt}, *turns]
                row[key] = turns
                break
        else:
            if overwrite or not text_of(row.get("system")):
                row["system"] = prompt
        out.append(row)
    return out


def pairs_from_columns(rows: Rows, *, prompt: str, chosen: str, rejected: str) -> Rows:
    """Preference pairs from a prompt column and two answer columns (the better one first)."""
    out: Rows = []
    for i, row in enumerate(rows):
        out.append(
            {
                "prompt": text_of(_need(row, prompt, i)) or "",
                "chosen": text_of(_need(row, chosen, i)) or "",
                "rejected": text_of(_need(row, rejected, i)) or "",
            }
        )
    return out


def generate_rejected(
    rows: Rows,
    model: Any,
    tokenizer: Any,
    *,
    progress: Callable[[str, float, float | None], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    max_new_tokens: int = 128,
    temperature: float = 1.0,
    top_p: float = 0.95,
    batch_size: int = 8,
    seed: int = 0,
    fmt: str = "auto",
    system_prompt: str = "",
) -> Rows:
    """Pairs whose rejected answer is sampled from `model` (usually the base model).

    The dataset's answer is the chosen one; the base model's answer, which the
    fine-tune should improve on, is the rejected one.  Returns conversational
    ``prompt``/``chosen``/``rejected`` rows.  Stops early (returning the pairs
    made so far) when `should_stop()` turns true.
    """
    import torch

    convs = _conversations(rows, fmt, system_prompt)
    prompts: list[list[dict[str, str]]] = []
    answers: list[str] = []
    for c in convs:
        last = max(i for i, m in enumerate(c) if m["role"] == "assistant")
        prompts.append(c[:last])
        answers.append(c[last]["content"])
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = CHATML_TEMPLATE
    pad_side = getattr(tokenizer, "padding_side", "right")
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    torch.manual_seed(seed)
    out: Rows = []
    total = len(prompts)
    if progress:
        progress("generating", 0, total)
    try:
        model.eval()
        device = next(model.parameters()).device
        for start in range(0, total, batch_size):
            if should_stop and should_stop():
                break
            batch = prompts[start : start + batch_size]
            texts = [
                tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
                for p in batch
            ]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(
                device
            )
            with torch.no_grad():
                gen = model.generate(
                    **enc,
                    do_sample=True,
                    temperature=temperature,
                    top_p=top_p,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                )
            new = gen[:, enc["input_ids"].shape[1] :]
            for j, ids in enumerate(new):
                text = tokenizer.decode(ids, skip_special_tokens=True).strip()
                out.append(
                    {
                        "prompt": batch[j],
                        "chosen": [{"role": "assistant", "content": answers[start + j]}],
                        "rejected": [{"role": "assistant", "content": text}],
                    }
                )
            if progress:
                progress("generating", len(out), total)
    finally:
        tokenizer.padding_side = pad_side
    return out


def write_jsonl(
    rows: Iterable[dict[str, Any]], path: str | Path, *, source: str | Path | None = None
) -> Path:
    """Write rows as JSON Lines (atomically); refuses to overwrite `source`."""
    from spark_tui.core.base.atomic import atomic_write_text

    path = Path(path)
    if source is not None and Path(source).exists() and path.exists():
        if path.resolve() == Path(source).resolve():
            raise DataError(
                f"{path}: refusing to overwrite the source file; save under another name"
            )
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    atomic_write_text(path, text)
    return path
