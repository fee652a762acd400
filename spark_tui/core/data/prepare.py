"""`prepare_dataset`: load, detect, normalise, lint, split and write one run's data.

This is the single entry point the training engine, the CLI and the Dataset
screen call.  Everything it decided is in the returned report (and in
``data_report.json`` next to the saved dataset), so nothing is dropped silently.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spark_tui.core.data import lint as L
from spark_tui.core.data.errors import DataError
from spark_tui.core.data.fit import method_fit
from spark_tui.core.data.formats import Detection, apply_column_map, detect_format
from spark_tui.core.data.loaders import Progress, Source, load_source
from spark_tui.core.data.normalize import (
    KINDS,
    LAYOUTS,
    strings_of,
    to_layout,
    to_unit,
    unit_kind,
)
from spark_tui.core.data.preview import preview_example
from spark_tui.core.data.split import split_indices
from spark_tui.core.data.templates import (
    Renderer,
    TemplateChoice,
    apply_template_to_tokenizer,
    resolve_chat_template,
    training_chat_template,
)
from spark_tui.core.data.tokens import TokenCounter

REPORT_NAME = "data_report.json"
HISTOGRAM_BINS = 20
TRAINED_SHARE_SAMPLE = 100


@dataclass
class PreparedData:
    """The prepared dataset and everything the step decided."""

    dataset: Any  # datasets.DatasetDict with "train" and "validation"
    report: dict[str, Any]
    detection: Detection
    template: TemplateChoice | None
    layout: str  # "messages", "text", "preference" or "kto"
    source: Source | None = None
    lengths: dict[str, list[int]] = field(default_factory=dict)  # tokens per row, per split

    @property
    def train(self) -> Any:
        return self.dataset["train"]

    @property
    def validation(self) -> Any:
        return self.dataset["validation"]


@dataclass
class _Processed:
    rows: list[dict[str, Any]]
    src_index: list[int]
    lengths: list[int]
    findings: dict[str, L.Finding]
    rows_in: int
    usable: int
    kto: dict[str, Any] | None
    keys: dict[str, Any]


def _notify(progress: Progress | None, stage: str, done: float, total: float | None) -> None:
    if progress is not None:
        progress(stage, done, total)


def prepare_dataset(
    cfg: Any,
    tokenizer: Any,
    *,
    out_dir: Path | str | None = None,
    progress: Progress | None = None,
    source: Source | None = None,
    objective: str | None = None,
    val_count: int | None = None,
) -> PreparedData:
    """Prepare `cfg.data` for `cfg.method.objective` with the model's tokenizer.

    Returns a `PreparedData` whose ``dataset`` is a DatasetDict with ``train``
    and ``validation`` in the layout TRL's trainer for the objective accepts
    (conversational ``messages``; ``prompt``/``chosen``/``rejected``;
    ``prompt``/``completion``/``label``; or ``text`` for plain text).  With
    `out_dir`, writes the dataset there with ``save_to_disk`` plus
    ``data_report.json``.  The chosen chat template is set on `tokenizer` so the
    trainer renders exactly what the preview shows.  `tokenizer` may be None
    (token counts are then estimated).  `source` reuses rows already loaded;
    `progress(stage, done, total)` is called along the way.
    Raises `DataError` (a SparkError) with a message that says what to do.
    """
    d = cfg.data
    obj = objective or cfg.method.objective
    timings: dict[str, float] = {}
    t = time.perf_counter()
    src = source or load_source(
        d.path, subset=d.subset, split=d.split, objective=obj, progress=progress
    )
    timings["load_s"] = time.perf_counter() - t
    det = detect_format(src.rows, column_map=d.column_map, override=d.format)
    fit = method_fit(det.format)
    if not fit[obj]["ok"]:
        raise DataError(
            f"{src.path}: the data is {det.title}, which cannot train {obj}: {fit[obj]['why']}"
        )
    actions = L.parse_drop(d.drop)
    layout = "text" if KINDS[det.format] == "text" and obj == "sft" else LAYOUTS[obj]
    template: TemplateChoice | None = None
    renderer = None
    if layout != "text":
        template = resolve_chat_template(tokenizer, getattr(cfg.model, "chat_template", "auto"))
        renderer = Renderer(template.template, tokenizer)
        apply_template_to_tokenizer(tokenizer, template)
    counter = TokenCounter(tokenizer, renderer)

    t = time.perf_counter()
    main = _process(src, det, obj, d.system_prompt, actions, counter, d.max_length, progress)
    timings["process_s"] = time.perf_counter() - t

    t = time.perf_counter()
    val_proc: _Processed | None = None
    val_src: Source | None = None
    if d.validation_path:
        val_src = load_source(d.validation_path, subset=d.subset, split="validation", objective=obj)
        vdet = detect_format(val_src.rows, column_map=d.column_map, override=d.format)
        if KINDS[vdet.format] != KINDS[det.format] and not method_fit(vdet.format)[obj]["ok"]:
            raise DataError(
                f"{val_src.path}: the validation file is {vdet.title}, which cannot train {obj}"
            )
        val_proc = _process(
            val_src, vdet, obj, d.system_prompt, actions, counter, d.max_length, None
        )
        train_idx, val_idx = list(range(len(main.rows))), []
        split_info: dict[str, Any] = {"method": "file", "validation_path": str(val_src.path)}
    else:
        labels = [r["label"] for r in main.rows] if layout == "kto" else None
        train_idx, val_idx = split_indices(
            len(main.rows),
            val_fraction=d.val_fraction,
            val_count=val_count,
            seed=d.seed,
            labels=labels,
        )
        split_info = {
            "method": "count" if val_count is not None else "fraction",
            "val_fraction": d.val_fraction,
            "val_count": val_count,
            "stratified_on": "label" if labels else None,
        }
    if not train_idx:
        raise DataError(
            f"{src.path}: no rows are left to train on after cleaning ({main.rows_in} read, "
            f"{main.usable} usable); see the lint report" + _top_reasons(main.findings)
        )
    train_rows = [main.rows[i] for i in train_idx]
    train_len = [main.lengths[i] for i in train_idx]
    if val_proc is not None:
        val_rows, val_len = val_proc.rows, val_proc.lengths
        leak_keys = {L.exact_key(strings_of(r), ()) for r in train_rows}
        leaks = sum(1 for r in val_rows if L.exact_key(strings_of(r), ()) in leak_keys)
        split_info["validation_rows_also_in_train"] = leaks
    else:
        val_rows = [main.rows[i] for i in val_idx]
        val_len = [main.lengths[i] for i in val_idx]
    split_info.update({"train": len(train_rows), "validation": len(val_rows), "seed": d.seed})
    _notify(progress, "building", 0, 1)
    dataset = build_dataset_dict(train_rows, val_rows, layout)
    _notify(progress, "building", 1, 1)
    timings["build_s"] = time.perf_counter() - t

    report = {
        "source": src.info(),
        "format": det.as_dict(),
        "objective": obj,
        "layout": layout,
        "columns": list(dataset["train"].column_names),
        "chat_template": _template_report(template, tokenizer),
        "lint": [f.as_dict(src.where) for f in main.findings.values()],
        "kto_balance": main.kto,
        "keys": main.keys,
        "split": split_info,
        "stats": _stats(
            main, train_rows, val_rows, train_len + val_len, counter, template, d.max_length
        ),
        "method_fit": fit,
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    if val_proc is not None and val_src is not None:
        report["validation_source"] = val_src.info()
        report["validation_lint"] = [f.as_dict(val_src.where) for f in val_proc.findings.values()]
    if train_rows:
        try:
            report["preview"] = [
                p.as_dict() for p in preview_example(train_rows[0], tokenizer, template)
            ]
        except DataError as exc:
            report["preview_error"] = str(exc)
    prepared = PreparedData(
        dataset, report, det, template, layout, src, {"train": train_len, "validation": val_len}
    )
    if out_dir is not None:
        t = time.perf_counter()
        write_prepared(prepared, Path(out_dir), progress=progress)
        report["timings"]["write_s"] = round(time.perf_counter() - t, 3)
    return prepared


def _top_reasons(findings: dict[str, L.Finding]) -> str:
    parts = [f"{f.count} {L.CATEGORIES[c].title.lower()}" for c, f in findings.items() if f.count]
    return (": " + ", ".join(parts)) if parts else ""


def _template_report(template: TemplateChoice | None, tokenizer: Any) -> dict[str, Any] | None:
    if template is None:
        return None
    d = template.as_dict()
    d["template"] = template.template
    d["training_template"] = training_chat_template(template.template)
    return d


def _process(
    src: Source,
    det: Detection,
    obj: str,
    system_prompt: str,
    actions: dict[str, str],
    counter: TokenCounter,
    max_length: int,
    progress: Progress | None,
) -> _Processed:
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
            _notify(progress, "checking", i, rows_in)
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
    return _Processed(final_rows, final_src, final_len, findings, rows_in, usable, kto, keys_info)


def _same(a: list[dict[str, str]], b: list[dict[str, str]]) -> bool:
    return [m["content"].strip() for m in a] == [m["content"].strip() for m in b]


def _unused_reason(unit: dict[str, Any], obj: str) -> str:
    if "label" in unit and obj == "sft":
        return "undesirable (label false) rows are not used for SFT"
    return f"rows of this kind are not used for {obj}"


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


def _stats(
    main: _Processed,
    train_rows: list[dict[str, Any]],
    val_rows: list[dict[str, Any]],
    lengths: list[int],
    counter: TokenCounter,
    template: TemplateChoice | None,
    max_length: int,
) -> dict[str, Any]:
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


# ---------------------------------------------------------------------------
# Arrow output


def features_for(layout: str) -> Any:
    from datasets import Features, List, Value

    msgs = List({"role": Value("string"), "content": Value("string")})
    if layout == "messages":
        return Features({"messages": msgs})
    if layout == "text":
        return Features({"text": Value("string")})
    if layout == "preference":
        return Features({"prompt": msgs, "chosen": msgs, "rejected": msgs})
    return Features({"prompt": msgs, "completion": msgs, "label": Value("bool")})


def build_dataset_dict(
    train: list[dict[str, Any]], validation: list[dict[str, Any]], layout: str
) -> Any:
    """A DatasetDict with ``train`` and ``validation`` (possibly empty) of the layout's schema."""
    import pyarrow as pa
    from datasets import Dataset, DatasetDict, DatasetInfo
    from datasets.table import InMemoryTable

    feats = features_for(layout)
    schema = feats.arrow_schema

    def make(rows: list[dict[str, Any]]) -> Any:
        table = pa.Table.from_pylist(rows, schema=schema) if rows else schema.empty_table()
        return Dataset(InMemoryTable(table), info=DatasetInfo(features=feats))

    return DatasetDict({"train": make(train), "validation": make(validation)})


def write_prepared(
    prepared: PreparedData, out_dir: Path, *, progress: Progress | None = None
) -> Path:
    """Write the DatasetDict (``save_to_disk``) and ``data_report.json`` into `out_dir`."""
    from spark_tui.core.fsutil import atomic_write_json

    out_dir = Path(out_dir)
    src = prepared.source
    if src is not None:
        sp = Path(src.path)
        if sp.exists():
            try:
                if out_dir.resolve() == sp.resolve() or sp.resolve().is_relative_to(
                    out_dir.resolve()
                ):
                    raise DataError(
                        f"{out_dir}: refusing to write the prepared data over the source; "
                        "choose another output folder"
                    )
            except OSError:
                pass
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir}: exists and is not a folder; choose another output folder")
    _notify(progress, "writing", 0, 1)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with _no_progress_bars():
            prepared.dataset.save_to_disk(str(out_dir))
    except OSError as exc:
        raise DataError(
            f"{out_dir}: cannot write the prepared data ({exc.strerror or exc})"
        ) from exc
    atomic_write_json(out_dir / REPORT_NAME, prepared.report)
    _notify(progress, "writing", 1, 1)
    return out_dir


@contextlib.contextmanager
def _no_progress_bars() -> Any:
    """`datasets` draws tqdm bars on stderr; they would corrupt the TUI."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()
