"""The numbers of the data report: token statistics, the length histogram, the trained share.

`prepare_dataset` assembles ``data_report.json`` from these pieces; the
Dataset screen and ``spark-tui data inspect`` show them.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from spark_tui.core.data import lint as L
from spark_tui.core.data.clean import Processed
from spark_tui.core.data.errors import DataError
from spark_tui.core.data.preview import preview_example
from spark_tui.core.data.templates import TemplateChoice, training_chat_template
from spark_tui.core.data.tokens import RowTokenCounter

HISTOGRAM_BINS = 20
TRAINED_SHARE_SAMPLE = 100


def top_reasons(findings: dict[str, L.Finding]) -> str:
    """': 3 missing or empty fields, 2 exact duplicates' (empty when nothing was found)."""
    parts = [f"{f.count} {L.CATEGORIES[c].title.lower()}" for c, f in findings.items() if f.count]
    return (": " + ", ".join(parts)) if parts else ""


def template_report(template: TemplateChoice | None) -> dict[str, Any] | None:
    """The chosen chat template, and the training form TRL masks with (None for plain text)."""
    if template is None:
        return None
    d = template.as_dict()
    d["template"] = template.template
    d["training_template"] = training_chat_template(template.template)
    return d


def _histogram(values: list[int], bins: int = HISTOGRAM_BINS) -> dict[str, list[float]]:
    if not values:
        return {"edges": [], "counts": []}
    lo, hi = min(values), max(values)
    if lo == hi:
        return {"edges": [lo, hi + 1], "counts": [len(values)]}
    width = max(1, math.ceil((hi - lo + 1) / bins))
    edges = [lo + k * width for k in range(bins + 1)]
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, (v - lo) // width)] += 1
    while counts and counts[-1] == 0:
        counts.pop()
        edges.pop()
    return {"edges": edges, "counts": counts}


def stats(
    main: Processed,
    train_rows: list[dict[str, Any]],
    val_rows: list[dict[str, Any]],
    lengths: list[int],
    counter: RowTokenCounter,
    template: TemplateChoice | None,
    max_length: int,
) -> dict[str, Any]:
    """Row counts before and after cleaning, token statistics and the trained share."""
    tok: dict[str, Any] = {"exact": counter.exact}
    if lengths:
        s = sorted(lengths)
        tok.update(
            {
                "min": s[0],
                "mean": round(statistics.fmean(s), 1),
                "median": s[len(s) // 2],
                "p95": s[min(len(s) - 1, int(0.95 * len(s)))],
                "max": s[-1],
                "total": sum(s),
                "over_max_length": sum(1 for v in s if v > max_length),
            }
        )
    sample = (train_rows + val_rows)[:TRAINED_SHARE_SAMPLE]
    trained = total = 0
    for row in sample:
        try:
            for p in preview_example(row, counter.tokenizer, template):
                trained += p.trained_tokens
                total += p.total_tokens
        except DataError:
            continue
    dropped = {c: f.count for c, f in main.findings.items() if f.count and f.action == "drop"}
    return {
        "rows_before": main.rows_in,
        "rows_usable": main.usable,
        "rows_after": len(train_rows) + len(val_rows),
        "rows_train": len(train_rows),
        "rows_validation": len(val_rows),
        "dropped_by_category": dropped,
        "tokens": tok,
        "histogram": _histogram(lengths),
        "trained_share": round(trained / total, 4) if total else None,
        "trained_share_sample_rows": len(sample),
    }
