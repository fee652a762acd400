"""Lint categories, the keep/drop choice per category, and the row-level checks.

Every category reports a count and example rows; `DataConfig.drop` lists the
categories to drop (``"too_long:truncate"`` and ``"control_chars:strip"`` fix
the rows instead, ``"recommended"`` expands to `RECOMMENDED_DROP`).  Rows that
cannot be trained at all (``empty``, ``unused``) are always dropped, and say so.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from spark_tui.core.data.errors import DataError


@dataclass(frozen=True)
class Category:
    id: str
    title: str
    help: str
    actions: tuple[str, ...]  # the first is the default
    recommended: str = "keep"
    forced: bool = False


CATEGORIES: dict[str, Category] = {
    c.id: c
    for c in (
        Category("empty", "Missing or empty fields",
                 "Rows without a usable prompt or answer: nothing to train on.",
                 ("drop",), "drop", forced=True),
        Category("unused", "Rows the objective cannot use",
                 "E.g. undesirable (label false) KTO rows when training SFT.",
                 ("drop",), "drop", forced=True),
        Category("template_error", "Rows the chat template rejects",
                 "The model's chat template raised an error on these rows (usually about the "
                 "order of roles); the trainer could not render them.", ("drop",), "drop",
                 forced=True),
        Category("keys_differ", "Keys that differ from most rows",
                 "Rows whose set of keys is not the most common one (a typo in a key is "
                 "a silent empty field).", ("keep", "drop")),
        Category("role_order", "Bad role order",
                 "Two user turns in a row, the assistant speaking first, a system turn in "
                 "the middle, a conversation ending on a user turn, unknown roles.",
                 ("keep", "drop")),
        Category("exact_duplicate", "Exact duplicates",
                 "The same example again (the first one is kept).", ("keep", "drop"), "drop"),
        Category("near_duplicate", "Near duplicates",
                 "The same text after lower-casing and removing spaces and punctuation.",
                 ("keep", "drop")),
        Category("too_long", "Longer than the max length",
                 "More tokens than max_length in the model's tokenizer. Kept rows are cut by "
                 "the trainer (the end of the answer is lost); truncate cuts the answer here, "
                 "drop removes the rows.", ("keep", "drop", "truncate"), "truncate"),
        Category("control_chars", "Invalid UTF-8 or control characters",
                 "Bytes that were not UTF-8 (shown as U+FFFD), lone surrogates, or control "
                 "characters other than tab and newline.", ("keep", "drop", "strip"), "strip"),
        Category("chosen_equals_rejected", "Chosen equals rejected",
                 "Preference pairs with the same answer twice: they teach nothing.",
                 ("keep", "drop"), "drop"),
    )
}  # fmt: skip
RECOMMENDED_DROP = [
    "exact_duplicate",
    "chosen_equals_rejected",
    "too_long:truncate",
    "control_chars:strip",
]
MAX_EXAMPLES = 10

_CTRL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_drop(drop: list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """`DataConfig.drop` as {category: action}; unknown names raise DataError."""
    actions = {cid: c.actions[0] for cid, c in CATEGORIES.items()}
    items: list[str] = []
    for item in drop or []:
        items.extend(RECOMMENDED_DROP if item == "recommended" else [item])
    for item in items:
        cid, _, action = str(item).partition(":")
        cid = cid.strip()
        action = action.strip() or "drop"
        cat = CATEGORIES.get(cid)
        if cat is None:
            known = ", ".join(c for c in CATEGORIES if not CATEGORIES[c].forced)
            raise DataError(
                f"unknown lint category {cid!r} in data.drop; known: {known}, recommended"
            )
        if action not in cat.actions:
            raise DataError(
                f"lint category {cid!r} cannot be '{action}'; choose {' or '.join(cat.actions)}"
            )
        actions[cid] = action
    return actions


def has_control(strings: list[str]) -> bool:
    return any(_CTRL.search(s) for s in strings)


def strip_control(text: str) -> str:
    return _CTRL.sub("", text)


def fix_surrogates(text: str) -> str:
    """Lone surrogates cannot be stored as UTF-8 (Arrow refuses them): replace them."""
    return _SURROGATE.sub("\ufffd", text)


def map_strings(row: dict[str, Any], fn: Any) -> dict[str, Any]:
    out = dict(row)
    if "text" in out:
        out["text"] = fn(out["text"])
    for key in ("messages", "prompt", "chosen", "rejected", "completion"):
        if key in out:
            out[key] = [{"role": m["role"], "content": fn(m["content"])} for m in out[key]]
    return out


def exact_key(strings: list[str], roles: tuple[str, ...]) -> int:
    return hash((roles, tuple(strings)))


_PUNCT = str.maketrans(
    {
        c: " "
        for c in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\u00a0\u2018\u2019\u201c\u201d\u2013\u2014\u2026"
    }
)


def near_key(strings: list[str]) -> int:
    """Same text after lower-casing and removing punctuation and repeated spaces."""
    return hash(" ".join(" ".join(strings).lower().translate(_PUNCT).split()))


@dataclass
class Finding:
    """One lint category's result."""

    category: str
    rows: list[int] = field(default_factory=list)  # source row indices (0-based)
    details: Counter[str] = field(default_factory=Counter)
    action: str = "keep"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.rows)

    def as_dict(self, where: Any = None) -> dict[str, Any]:
        cat = CATEGORIES[self.category]
        examples = self.rows[:MAX_EXAMPLES]
        d = {
            "category": self.category,
            "title": cat.title,
            "help": cat.help,
            "count": self.count,
            "examples": [i + 1 for i in examples],
            "action": self.action,
            "actions": list(cat.actions),
            "recommended": cat.recommended,
            "forced": cat.forced,
            "details": dict(self.details.most_common(8)),
        }
        if where is not None:
            d["where"] = [where(i) for i in examples]
        d.update(self.extra)
        return d


def kto_balance(labels: list[bool]) -> dict[str, Any] | None:
    """Desirable/undesirable counts and the weights that keep TRL's ratio in [1, 4/3]."""
    if not labels:
        return None
    n_d = sum(1 for x in labels if x)
    n_u = len(labels) - n_d
    w_d = w_u = 1.0
    if n_d and n_u:
        ratio = n_d / n_u
        if ratio < 1.0:
            w_d = round(n_u / n_d, 2)
        elif ratio > 4 / 3:
            w_u = round(n_d / n_u, 2)
    if not n_d or not n_u:
        note = "only one kind of label: KTO needs both desirable and undesirable examples"
    elif w_d == w_u == 1.0:
        note = "balanced enough: the default weights (1.0, 1.0) are fine"
    else:
        note = (
            f"unbalanced ({n_d} desirable : {n_u} undesirable); use desirable_weight={w_d}, "
            f"undesirable_weight={w_u} so that weighted desirable : undesirable is in [1, 4/3]"
        )
    return {
        "desirable": n_d,
        "undesirable": n_u,
        "desirable_weight": w_d,
        "undesirable_weight": w_u,
        "note": note,
        "ok": bool(n_d and n_u),
    }
