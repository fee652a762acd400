"""`prepare_dataset`: load, detect, normalise, lint, split and write one run's data.

This is the single entry point the training engine, the CLI and the Dataset
screen call.  Everything it decided is in the returned report (and in
``data_report.json`` next to the saved dataset), so nothing is dropped silently.
The steps live beside it: `loaders` reads the source, `clean` turns its rows
into training rows, `report` computes the numbers, `output` builds and writes
the DatasetDict.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from spark_tui.core.data import lint as L
from spark_tui.core.data.clean import Processed, process_rows
from spark_tui.core.data.errors import DataError
from spark_tui.core.data.fit import method_fit
from spark_tui.core.data.formats import Detection, detect_format
from spark_tui.core.data.loaders import load_source
from spark_tui.core.data.normalize import KINDS, LAYOUTS, strings_of
from spark_tui.core.data.output import PreparedData, build_dataset_dict, write_prepared
from spark_tui.core.data.preview import preview_example
from spark_tui.core.data.report import stats, template_report, top_reasons
from spark_tui.core.data.source import Progress, Source, notify
from spark_tui.core.data.split import split_indices
from spark_tui.core.data.templates import (
    Renderer,
    TemplateChoice,
    apply_template_to_tokenizer,
    resolve_chat_template,
)
from spark_tui.core.data.tokens import RowTokenCounter


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
    det = _detect(src, d)
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
    counter = RowTokenCounter(tokenizer, renderer)

    t = time.perf_counter()
    main = process_rows(src, det, obj, d.system_prompt, actions, counter, d.max_length, progress)
    timings["process_s"] = time.perf_counter() - t

    t = time.perf_counter()
    val_proc: Processed | None = None
    val_src: Source | None = None
    if d.validation_path:
        val_src = load_source(d.validation_path, subset=d.subset, split="validation", objective=obj)
        vdet = _detect(val_src, d)
        if KINDS[vdet.format] != KINDS[det.format] and not method_fit(vdet.format)[obj]["ok"]:
            raise DataError(
                f"{val_src.path}: the validation file is {vdet.title}, which cannot train {obj}"
            )
        val_proc = process_rows(
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
            f"{main.usable} usable); see the lint report" + top_reasons(main.findings)
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
    notify(progress, "building", 0, 1)
    dataset = build_dataset_dict(train_rows, val_rows, layout)
    notify(progress, "building", 1, 1)
    timings["build_s"] = time.perf_counter() - t

    report = {
        "source": src.info(),
        "format": det.as_dict(),
        "objective": obj,
        "layout": layout,
        "columns": list(dataset["train"].column_names),
        "chat_template": template_report(template),
        "lint": [f.as_dict(src.where) for f in main.findings.values()],
        "kto_balance": main.kto,
        "keys": main.keys,
        "split": split_info,
        "stats": stats(
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


def _detect(src: Source, d: Any) -> Detection:
    """`detect_format` on a source's rows; its errors name the file they are about."""
    try:
        return detect_format(src.rows, column_map=d.column_map, override=d.format)
    except DataError as exc:
        if exc.path:
            raise
        raise DataError(str(exc), path=src.path) from exc
