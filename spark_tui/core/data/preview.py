"""Preview: a row exactly as the model sees it, split into trained and not-trained parts.

The trained part is what assistant-only / completion-only loss trains on: the
assistant turns (SFT), the chosen and rejected answers (pairs), the completion
(KTO), or the whole text (plain text).  With a template that has
``{% generation %}`` markers (or a known twin that has them) the spans come
from the template itself; otherwise from rendering the prefix before each
assistant turn with ``add_generation_prompt=True``, which is what TRL does for
prompt/completion data.  Token counts come from the tokenizer's offsets on the
full text, so they add up to the real length.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from spark_tui.core.data.normalize import conversations_of
from spark_tui.core.data.templates import (
    Renderer,
    TemplateChoice,
    has_generation_markers,
    resolve_chat_template,
    training_chat_template,
)


@dataclass
class Segment:
    text: str
    trained: bool
    tokens: int


@dataclass
class Preview:
    """One rendered conversation (a pair gives two: chosen and rejected)."""

    part: str  # "conversation", "chosen", "rejected", "completion" or "text"
    text: str
    segments: list[Segment] = field(default_factory=list)
    total_tokens: int = 0
    trained_tokens: int = 0
    method: str = ""  # how the trained spans were found
    label: bool | None = None  # KTO only
    exact: bool = True  # False when counted without a tokenizer

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _template_of(tokenizer: Any, template: str | TemplateChoice | None) -> str:
    if isinstance(template, TemplateChoice):
        return template.template
    if isinstance(template, str):
        return template
    return resolve_chat_template(tokenizer).template


def preview_example(
    row: dict[str, Any],
    tokenizer: Any = None,
    template: str | TemplateChoice | None = None,
) -> list[Preview]:
    """Render one prepared row; returns one Preview per conversation in it."""
    if "text" in row:
        text = row["text"]
        eos = getattr(tokenizer, "eos_token", None) if tokenizer is not None else None
        if isinstance(eos, str):
            text += eos
        return [
            _build("text", text, [(0, len(text))], tokenizer, "plain text: every token is trained")
        ]
    label = bool(row.get("label")) if "completion" in row else None
    out = []
    for part, text, spans, method in conversation_spans(row, tokenizer, template):
        p = _build(part, text, spans, tokenizer, method)
        p.label = label
        out.append(p)
    return out


def conversation_spans(
    row: dict[str, Any],
    tokenizer: Any = None,
    template: str | TemplateChoice | None = None,
) -> list[tuple[str, str, list[tuple[int, int]], str]]:
    """(part, rendered text, trained character spans, how they were found) per conversation.

    The one definition of "trained" for chat rows: the preview draws it and the
    trainer's labels are built from it (`labels.py`).
    """
    tmpl = _template_of(tokenizer, template)
    gen = tmpl if has_generation_markers(tmpl) else training_chat_template(tmpl)
    renderer = _renderer(gen or tmpl, tokenizer)
    parts = ["conversation"]
    if "chosen" in row:
        parts = ["chosen", "rejected"]
    elif "completion" in row:
        parts = ["completion"]
    out = []
    for part, conv in zip(parts, conversations_of(row), strict=False):
        n_prompt = len(row["prompt"]) if "prompt" in row else None
        if gen:
            text, spans = renderer.render_with_generation(conv)
            if n_prompt is not None:  # only the answer after the prompt is trained
                cut = len(renderer.render(conv[:n_prompt], add_generation_prompt=True))
                spans = [(max(a, cut), b) for a, b in spans if b > cut]
            method = "the template's generation markers"
        else:
            text, spans = _prefix_spans(renderer, conv, n_prompt)
            method = "rendering the prompt before each answer"
        if not spans and any(m["role"] == "assistant" for m in conv):
            method = (
                "this chat template could not be masked (no answer found in its rendering): "
                "the row is left out of training"
            )
        out.append((part, text, spans, method))
    return out


def token_states(
    text: str, spans: list[tuple[int, int]], tokenizer: Any
) -> tuple[list[int], list[tuple[int, int]], list[bool]]:
    """The tokens of `text` (as the trainer tokenizes it), their offsets, and which are trained.

    A token is trained when the middle of its characters lies in a trained span.
    """
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    states = [
        any(a <= ((x + y - 1) // 2 if y > x else x) < b for a, b in spans) for x, y in offsets
    ]
    return list(enc["input_ids"]), offsets, states


_RENDERERS: dict[tuple[str, int], Renderer] = {}


def _renderer(template: str, tokenizer: Any) -> Renderer:
    """Renderers are cached per template and tokenizer (stepping through rows re-uses them)."""
    key = (template, id(tokenizer))
    r = _RENDERERS.get(key)
    if r is None or r.kwargs != Renderer.tokens_of(tokenizer):
        if len(_RENDERERS) > 16:
            _RENDERERS.clear()
        r = _RENDERERS[key] = Renderer(template, tokenizer)
    return r


def _prefix_spans(
    renderer: Renderer, conv: list[dict[str, str]], n_prompt: int | None
) -> tuple[str, list[tuple[int, int]]]:
    full = renderer.render(conv)
    spans = []
    pos = 0
    start_at = n_prompt if n_prompt is not None else 0
    for i, m in enumerate(conv):
        if i < start_at or m["role"] != "assistant":
            continue
        before = renderer.render(conv[:i], add_generation_prompt=True)
        upto = renderer.render(conv[: i + 1])
        if full.startswith(before) and full.startswith(upto) and len(upto) > len(before):
            spans.append((len(before), len(upto)))
            pos = len(upto)
        else:  # a template that renders prefixes differently: find the answer text itself
            at = full.find(m["content"], pos)
            if at >= 0:
                spans.append((at, at + len(m["content"])))
                pos = at + len(m["content"])
    return full, spans


def _build(
    part: str, text: str, spans: list[tuple[int, int]], tokenizer: Any, method: str
) -> Preview:
    def trained_at(pos: int) -> bool:
        return any(a <= pos < b for a, b in spans)

    if tokenizer is None:
        bounds = sorted({0, len(text), *(x for s in spans for x in s if 0 <= x <= len(text))})
        segs = [
            Segment(text[a:b], trained_at(a), max(1, (b - a) // 4))
            for a, b in zip(bounds, bounds[1:], strict=False)
            if b > a
        ]
        return _finish(part, text, segs, method + " (token counts estimated: no tokenizer)", False)
    _ids, offsets, states = token_states(text, spans, tokenizer)
    segs: list[Segment] = []
    cur_start = 0
    cur_state: bool | None = None
    count = 0
    for (a, _b), state in zip(offsets, states, strict=True):
        if cur_state is None:
            cur_state = state
        elif state != cur_state:
            segs.append(Segment(text[cur_start:a], cur_state, count))
            cur_start, cur_state, count = a, state, 0
        count += 1
    if cur_state is not None:
        segs.append(Segment(text[cur_start:], cur_state, count))
    return _finish(part, text, segs, method, True)


def _finish(part: str, text: str, segs: list[Segment], method: str, exact: bool) -> Preview:
    total = sum(s.tokens for s in segs)
    trained = sum(s.tokens for s in segs if s.trained)
    return Preview(part, text, segs, total, trained, method, None, exact)
