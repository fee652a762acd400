"""Format detection (with the evidence shown to the user) and column mapping.

Formats (the names match `DataConfig.format`):

- ``alpaca``: ``instruction``/``input``/``output``, optional ``system`` and ``history``
- ``sharegpt``: ``conversations`` of ``{"from", "value"}`` turns (human/gpt/system,
  tool turns ``function_call``/``observation``)
- ``messages``: OpenAI-style ``messages`` of ``{"role", "content"}`` (content a
  string or a list of text parts)
- ``prompt_completion``: ``prompt``/``completion``
- ``text``: plain ``text`` (continued pre-training)
- ``preference``: ``prompt``/``chosen``/``rejected`` (strings or message lists),
  ``chosen``/``rejected`` conversations with an implicit prompt, or ShareGPT
  ``conversations`` plus ``chosen``/``rejected`` turn objects
- ``kto``: ``prompt``/``completion``/``label``, or ``messages`` plus a boolean
  ``label`` (``kto_tag`` is accepted as the label column)

A column map renames source columns to these field names.  It is written
``{source_column: field}`` like `datasets.Dataset.rename_columns`; the reverse
``{field: source_column}`` is accepted too, since the field names are a known set.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from spark_tui.core.data.errors import DataError

FORMATS = ("alpaca", "sharegpt", "messages", "prompt_completion", "text", "preference", "kto")
FORMAT_TITLES = {
    "alpaca": "Alpaca (instruction / input / output)",
    "sharegpt": "ShareGPT (conversations with from / value)",
    "messages": "OpenAI messages (role / content)",
    "prompt_completion": "prompt / completion",
    "text": "plain text",
    "preference": "preference pairs (prompt / chosen / rejected)",
    "kto": "unpaired preference for KTO (prompt / completion / label)",
}
FIELDS = (
    "instruction", "input", "output", "system", "history", "prompt", "completion",
    "chosen", "rejected", "label", "text", "messages", "conversations",
)  # fmt: skip

# Column names that usually mean one of the fields (compared lower-cased, without _ - or spaces).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "instruction": ("instruction", "question", "query", "prompt", "problem", "task", "request",
                    "human", "user", "userprompt", "inputtext", "q"),
    "input": ("input", "context"),
    "output": ("output", "answer", "response", "completion", "solution", "assistant", "gpt",
               "target", "reply", "bot", "a", "outputtext", "generation"),
    "system": ("system", "systemprompt", "sys", "systemmessage"),
    "chosen": ("chosen", "preferred", "accepted", "good", "better", "chosenresponse",
               "responsechosen", "winner", "positive"),
    "rejected": ("rejected", "dispreferred", "bad", "worse", "rejectedresponse",
                 "responserejected", "loser", "negative"),
    "label": ("label", "ktotag", "isgood", "desirable", "thumbsup", "feedback", "isdesirable"),
    "text": ("text", "content", "body", "document", "passage"),
}  # fmt: skip

_ROLE_KEYS = ("role", "content")
_SHAREGPT_KEYS = ("from", "value")
SAMPLE = 200


@dataclass
class Detection:
    """The detected (or chosen) format, the column map used, and why."""

    format: str
    evidence: list[str]
    column_map: dict[str, str] = field(default_factory=dict)  # source column -> field
    auto_mapped: bool = False
    overridden: bool = False
    candidates: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return FORMAT_TITLES.get(self.format, self.format)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.format,
            "title": self.title,
            "evidence": list(self.evidence),
            "column_map": dict(self.column_map),
            "auto_mapped": self.auto_mapped,
            "overridden": self.overridden,
            "candidates": list(self.candidates),
        }


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", str(name).lower())


def resolve_column_map(columns: list[str], column_map: dict[str, str] | None) -> dict[str, str]:
    """Turn a user column map into ``{source_column: field}``; unknown names raise DataError."""
    out: dict[str, str] = {}
    colset = set(columns)
    for k, v in (column_map or {}).items():
        if k in colset and v in FIELDS:
            out[k] = v
        elif v in colset and k in FIELDS:
            out[v] = k
        elif k in colset or v in colset:
            src = k if k in colset else v
            raise DataError(
                f"column map {k!r} = {v!r}: {(v if k in colset else k)!r} is not a field; "
                f"map '{src}' to one of {', '.join(FIELDS)}"
            )
        else:
            raise DataError(
                f"column map {k!r} = {v!r}: neither is a column of the data; "
                f"the columns are {', '.join(columns) or '(none)'}"
            )
    return out


def apply_column_map(row: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    """Rename a row's keys (the original dict is not changed)."""
    if not mapping:
        return row
    out = {k: v for k, v in row.items() if k not in mapping}
    for src, dst in mapping.items():
        if src in row:
            out[dst] = row[src]
    return out


def suggest_column_map(columns: list[str]) -> dict[str, str]:
    """Source columns that look like known fields under another name (question -> instruction, ...)."""
    present = set(columns)
    normed = {c: _norm(c) for c in columns}
    taken: set[str] = set()
    out: dict[str, str] = {}

    def find(target: str) -> str | None:
        for syn in SYNONYMS[target]:
            for col, n in normed.items():
                if n == syn and col not in taken and col not in out:
                    return col
        return None

    has_pref = find("chosen") and find("rejected")
    targets = ["chosen", "rejected", "label", "system", "instruction", "input", "output", "text"]
    if has_pref:
        targets = ["chosen", "rejected", "system"]
    for target in targets:
        if target in present:
            taken.add(target)
            continue
        col = find(target)
        if col is not None and col != target:
            out[col] = target
            taken.add(col)
    fields = {out.get(c, c) for c in columns}
    if has_pref:
        prompt_col = next(
            (c for c in columns if c not in out and _norm(c) in SYNONYMS["instruction"]), None
        )
        if prompt_col and prompt_col != "prompt" and "prompt" not in present:
            out[prompt_col] = "prompt"
        return out
    # Without an instruction column, "input"/"output" or "prompt"/"response" are a pair.
    if "instruction" not in fields and "output" in fields:
        if "input" in fields and "input" not in present:
            pass
        elif "input" in present:
            out["input"] = "instruction"
        elif "prompt" in present:
            out["prompt"] = "instruction"
    if "label" in fields and "output" in fields:
        # KTO rows: prompt/completion/label
        rev = {v: k for k, v in out.items()}
        inst = rev.get("instruction", "instruction" if "instruction" in present else None)
        if inst == "prompt":
            out.pop("prompt", None)
        elif inst and "prompt" not in present:
            out[inst] = "prompt"
        outc = rev.get("output", "output" if "output" in present else None)
        if outc == "completion":
            out.pop("completion", None)
        elif outc and "completion" not in present:
            out[outc] = "completion"
    return {k: v for k, v in out.items() if k != v}


def detect_format(
    rows: list[dict[str, Any]],
    *,
    column_map: dict[str, str] | None = None,
    override: str = "auto",
) -> Detection:
    """Detect the format from the first rows; `override` (a format name) skips detection."""
    if not rows:
        raise DataError("the data has no rows")
    sample = rows[:SAMPLE]
    columns = _columns(sample)
    mapping = resolve_column_map(columns, column_map)
    auto = False
    mapped = [apply_column_map(r, mapping) for r in sample]
    if override not in ("auto", "", None):
        if override not in FORMATS:
            raise DataError(f"unknown format {override!r}; use one of: auto, {', '.join(FORMATS)}")
        found = _detect(mapped)
        if found is None or found[0] != override:
            sugg = suggest_column_map(_columns(mapped))
            if sugg:
                trial = [apply_column_map(r, sugg) for r in mapped]
                got = _detect(trial)
                if got is not None and (got[0] == override or _compatible(override, got[0])):
                    mapping = {**mapping, **sugg}
                    auto = True
                    mapped = trial
        _check_fields(override, mapped, columns, mapping)
        ev = [f"format set to {override} by hand (detection skipped)"]
        if auto:
            ev.append("columns renamed: " + _describe_map(mapping))
        return Detection(override, ev, mapping, auto, True, [override])
    found = _detect(mapped)
    if found is None:
        sugg = suggest_column_map(_columns(mapped))
        if sugg:
            trial = [apply_column_map(r, sugg) for r in mapped]
            found = _detect(trial)
            if found is not None:
                mapping = {**mapping, **sugg}
                auto = True
                found = (found[0], [*found[1], "columns renamed: " + _describe_map(sugg)], found[2])
    if found is None:
        raise DataError(
            "cannot tell the format of the data: its columns are "
            f"{', '.join(repr(c) for c in columns) or '(none)'}. Map the columns to known fields "
            "(e.g. --map question=instruction --map answer=output, or column_map in the run "
            f"config) or choose the format by hand; known formats: {', '.join(FORMATS)}"
        )
    fmt, evidence, candidates = found
    if mapping and not auto:
        evidence = [*evidence, "columns renamed: " + _describe_map(mapping)]
    return Detection(fmt, evidence, mapping, auto, False, candidates)


def _compatible(wanted: str, got: str) -> bool:
    return {wanted, got} <= {"alpaca", "prompt_completion"}


def _describe_map(mapping: dict[str, str]) -> str:
    return ", ".join(f"{k} -> {v}" for k, v in mapping.items())


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for r in rows:
        for k in r:
            seen.setdefault(k, None)
    return list(seen)


def _share(rows: list[dict[str, Any]], key: str) -> float:
    return sum(1 for r in rows if key in r and r[key] is not None) / max(1, len(rows))


def _turn_keys(rows: list[dict[str, Any]], key: str) -> Counter[str]:
    """Which keys the turns inside a list column use (role/content or from/value)."""
    keys: Counter[str] = Counter()
    for r in rows:
        v = r.get(key)
        if isinstance(v, list):
            for t in v[:4]:
                if isinstance(t, dict):
                    keys.update(t.keys())
    return keys


def _pct(x: float) -> str:
    return f"{round(100 * x)}%"


def _detect(rows: list[dict[str, Any]]) -> tuple[str, list[str], list[str]] | None:
    n = len(rows)
    has = {k: _share(rows, k) for k in _columns(rows)}

    def present(k: str, at_least: float = 0.5) -> bool:
        return has.get(k, 0.0) >= at_least

    cands: list[str] = []
    ev: list[str] = []
    label_col = "label" if present("label") else ("kto_tag" if present("kto_tag") else None)

    def conv_style(key: str) -> str | None:
        tk = _turn_keys(rows, key)
        if tk["role"] and tk["content"]:
            return "messages"
        if tk["from"] and tk["value"]:
            return "sharegpt"
        return None

    def turns_column(key: str, native: str, quiet_after: str, share: str) -> None:
        """Count a list-of-turns column as its style; say so unless `quiet_after` fits already."""
        style = conv_style(key)
        if style is None:
            return
        cands.append(style)
        if style == native:
            if quiet_after not in cands:
                ev.append(
                    f"'{key}' is a list of turns with {_TURN_KEYS[style]} keys in {share} sampled rows"
                )
        else:
            ev.append(f"'{key}' holds {_TURN_KEYS[style]} turns: read as {_STYLE_NAMES[style]}")

    # KTO: prompt/completion + label, or messages + label
    if label_col and present("completion") and present("prompt"):
        ev.append(
            f"'prompt', 'completion' and '{label_col}' in {_pct(has[label_col])} of {n} sampled rows"
        )
        cands.append("kto")
    elif label_col and present("messages") and conv_style("messages"):
        ev.append(
            f"'messages' conversations plus a '{label_col}' column in {_pct(has[label_col])} of {n} sampled rows"
        )
        cands.append("kto")
    if present("chosen") and present("rejected"):
        kind = _value_kind(rows, "chosen")
        if present("conversations"):
            ev.append(
                "ShareGPT 'conversations' plus 'chosen'/'rejected' turn objects "
                f"in {_pct(min(has['chosen'], has['rejected']))} of {n} sampled rows"
            )
        elif present("prompt"):
            ev.append(
                f"'prompt', 'chosen' and 'rejected' ({kind}) in "
                f"{_pct(min(has['chosen'], has['rejected'], has['prompt']))} of {n} sampled rows"
            )
        else:
            ev.append(
                f"'chosen' and 'rejected' ({kind}) without 'prompt': the prompt is the shared "
                "start of the two conversations"
            )
        cands.append("preference")
    if present("conversations"):
        turns_column("conversations", "sharegpt", "preference", f"{n}")
    if present("messages"):
        turns_column("messages", "messages", "kto", f"{_pct(has['messages'])} of {n}")
    if present("instruction") and present("output"):
        cands.append("alpaca")
        extra = [k for k in ("input", "system", "history") if k in has]
        ev.append(
            f"'instruction' and 'output' in {_pct(min(has['instruction'], has['output']))} of {n} sampled rows"
            + (f" (also {', '.join(repr(k) for k in extra)})" if extra else "")
        )
    if present("prompt") and present("completion") and "kto" not in cands:
        cands.append("prompt_completion")
        ev.append(
            f"'prompt' and 'completion' in {_pct(min(has['prompt'], has['completion']))} of {n} sampled rows"
        )
    if present("text") and not cands:
        cands.append("text")
        ev.append(
            f"only a 'text' column to learn from ({_pct(has['text'])} of {n} sampled rows): continued pre-training"
        )
    if not cands:
        return None
    fmt = cands[0]
    if len(cands) > 1:
        ev.append(f"also fits: {', '.join(c for c in cands[1:])}")
    return fmt, ev, cands


_TURN_KEYS = {"sharegpt": "'from'/'value'", "messages": "'role'/'content'"}
_STYLE_NAMES = {"sharegpt": "ShareGPT", "messages": "OpenAI messages"}


def _value_kind(rows: list[dict[str, Any]], key: str) -> str:
    for r in rows:
        v = r.get(key)
        if isinstance(v, str):
            return "strings"
        if isinstance(v, list):
            return "message lists"
        if isinstance(v, dict):
            return "message objects"
    return "values"


_REQUIRED = {
    "alpaca": (("instruction",), ("output",)),
    "sharegpt": (("conversations", "messages"),),
    "messages": (("messages", "conversations"),),
    "prompt_completion": (("prompt", "instruction"), ("completion", "output")),
    "text": (("text",),),
    "preference": (("chosen",), ("rejected",)),
    "kto": (("prompt", "messages"), ("label", "kto_tag")),
}


def _check_fields(
    fmt: str, rows: list[dict[str, Any]], columns: list[str], mapping: dict[str, str]
) -> None:
    have = set(_columns(rows))
    missing = [alts for alts in _REQUIRED[fmt] if not any(a in have for a in alts)]
    if fmt == "kto" and "prompt" in have and "completion" not in have:
        missing.append(("completion",))
    if missing:
        need = ", ".join(" or ".join(repr(a) for a in alts) for alts in missing)
        raise DataError(
            f"format {fmt} needs the column {need}, but the data has "
            f"{', '.join(repr(c) for c in columns) or 'no columns'}; map a column to it "
            "(e.g. --map answer=output) or pick another format"
        )
