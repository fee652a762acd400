"""One source's rows -> training rows: normalise, lint, apply drops and fixes, fit lengths.

`process_rows` is the per-row pass of `prepare_dataset`, run once for the
training source and once for a separate validation file.  It maps each raw row
to the objective's layout, records every lint finding by category (with the
rows it hit), drops or fixes rows as `actions` say (before tokenizing, so
dropped rows cost nothing), then measures token lengths and drops or truncates
the rows over ``max_length``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from spark_tui.core.data import lint as L
from spark_tui.core.data.formats import Detection, apply_column_map
from spark_tui.core.data.normalize import KINDS, strings_of, to_layout, to_unit, unit_kind
from spark_tui.core.data.source import Progress, Source, notify
from spark_tui.core.data.tokens import RowTokenCounter


@dataclass
class Processed:
    """The rows one source leaves after cleaning, and what the cleaning found."""

    rows: list[dict[str, Any]]
    src_index: list[int]
    lengths: list[int]
    findings: dict[str, L.Finding]
    rows_in: int
    usable: int
    kto: dict[str, Any] | None
    keys: dict[str, Any]


def process_rows(
    src: Source,
    det: Detection,
    obj: str,
    system_prompt: str,
    actions: dict[str, str],
    counter: RowTokenCounter,
    max_length: int,
    progress: Progress | None,
) -> Processed:
    """Clean the rows of `src` (detected as `det`) for objective `obj`; see the module doc."""
    rows_in = len(src.rows)
    fmt = det.format
    mapping = det.column_map
    found: dict[str, dict[int, None]] = {c: {} for c in L.CATEGORIES}
    details: dict[str, Counter[str]] = {c: Counter() for c in L.CATEGORIES}
    out_rows: list[dict[str, Any]] = []
    out_src: list[int] = []
    flags: list[set[str]] = []

    # Keys that differ from the most common key set.
    keysets = Counter(frozenset(r) for r in src.rows)
    common, common_n = keysets.most_common(1)[0]
    for i, r in enumerate(src.rows):
        if frozenset(r) != common:
            found["keys_differ"][i] = None
            missing, extra = common - set(r), set(r) - common
            det_s = (f"missing {', '.join(sorted(missing))}" if missing else "") + (
                ("; " if missing and extra else "") + f"extra {', '.join(sorted(extra))}"
                if extra
                else ""
            )
            details["keys_differ"][det_s] += 1
    keys_info = {
        "most_common": sorted(common),
        "rows_with_them": common_n,
        "key_sets": len(keysets),
    }

    every = max(1, rows_in // 50)
    pref_equal: set[int] = set()
    for i, raw in enumerate(src.rows):
        unit, issues = to_unit(apply_column_map(raw, mapping), fmt, system_prompt)
        row_flags: set[str] = set()
        for cat, detail in issues:
            found[cat][i] = None
            details[cat][detail] += 1
            row_flags.add(cat)
        if i in src.invalid_utf8_rows:
            found["control_chars"][i] = None
            details["control_chars"]["invalid UTF-8 bytes in the source line"] += 1
            row_flags.add("control_chars")
        if i % every == 0:
            notify(progress, "checking", i, rows_in)
        if unit is None:
            continue
        if unit_kind(unit) == "pref" and _same(unit["chosen"], unit["rejected"]):
            found["chosen_equals_rejected"][i] = None
            pref_equal.add(i)
            row_flags.add("chosen_equals_rejected")
        outs = to_layout(unit, obj)
        if not outs:
            found["unused"][i] = None
            details["unused"][_unused_reason(unit, obj)] += 1
            continue
        if i in found["keys_differ"]:
            row_flags.add("keys_differ")
        for o in outs:
            out_rows.append(o)
            out_src.append(i)
            flags.append(set(row_flags))
    usable = len({i for i in out_src})

    # Control characters, duplicates.
    seen_exact: set[int] = set()
    seen_near: set[int] = set()
    for j, o in enumerate(out_rows):
        strings = strings_of(o)
        i = out_src[j]
        if L.has_control(strings):
            if i not in found["control_chars"]:
                found["control_chars"][i] = None
                details["control_chars"]["control characters or U+FFFD"] += 1
            flags[j].add("control_chars")
        roles = tuple(m["role"] for m in o.get("messages", ()))
        ek = L.exact_key(strings, roles + (str(o.get("label")),))
        nk = L.near_key(strings + [str(o.get("label"))])
        if ek in seen_exact:
            found["exact_duplicate"][i] = None
            flags[j].add("exact_duplicate")
        elif nk in seen_near:
            found["near_duplicate"][i] = None
            flags[j].add("near_duplicate")
        seen_exact.add(ek)
        seen_near.add(nk)

    # Apply the row-level drops and fixes (before tokenizing, so dropped rows cost nothing).
    kept: list[dict[str, Any]] = []
    kept_src: list[int] = []
    for j, o in enumerate(out_rows):
        f = flags[j]
        if any(actions.get(c) == "drop" for c in f):
            continue
        if "control_chars" in f:
            o = L.map_strings(
                o, L.strip_control if actions["control_chars"] == "strip" else L.fix_surrogates
            )
        kept.append(o)
        kept_src.append(out_src[j])

    # Token lengths and the too-long rows.
    template_errors: dict[int, str] = {}
    lengths = counter.row_lengths(kept, progress, template_errors)
    final_rows: list[dict[str, Any]] = []
    final_src: list[int] = []
    final_len: list[int] = []
    truncated = could_not = 0
    for j, (o, i, n) in enumerate(zip(kept, kept_src, lengths, strict=False)):
        if n < 0:
            found["template_error"][i] = None
            details["template_error"][template_errors.get(j, "")[:120]] += 1
            continue
        if n > max_length:
            found["too_long"][i] = None
            act = actions["too_long"]
            if act == "drop":
                continue
            if act == "truncate":
                cut = counter.truncate(o, max_length)
                if cut is None:
                    could_not += 1
                    details["too_long"]["the prompt alone is too long: dropped"] += 1
                    continue
                o = cut
                n = counter.row_lengths([o])[0]
                truncated += 1
        final_rows.append(o)
        final_src.append(i)
        final_len.append(n)

    findings: dict[str, L.Finding] = {}
    for cid, rows in found.items():
        fnd = L.Finding(cid, sorted(rows), details[cid], actions[cid])
        if cid == "too_long":
            fnd.extra = {
                "max_length": max_length,
                "truncated": truncated,
                "exact_tokens": counter.exact,
            }
        findings[cid] = fnd
    if obj == "kto" or KINDS.get(fmt) == "kto":
        labels = [r["label"] for r in final_rows if "label" in r]
        kto = L.kto_balance(labels) if obj == "kto" else None
    else:
        kto = None
    return Processed(final_rows, final_src, final_len, findings, rows_in, usable, kto, keys_info)


def _same(a: list[dict[str, str]], b: list[dict[str, str]]) -> bool:
    return [m["content"].strip() for m in a] == [m["content"].strip() for m in b]


def _unused_reason(unit: dict[str, Any], obj: str) -> str:
    if "label" in unit and obj == "sft":
        return "undesirable (label false) rows are not used for SFT"
    return f"rows of this kind are not used for {obj}"
