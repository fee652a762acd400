"""The data step: load any common format, detect it, normalise, lint, split, preview.

Public API (everything the CLI, the TUI and the training engine use)::

    prepare_dataset(cfg, tokenizer, *, out_dir=None, progress=None, source=None,
                    objective=None, val_count=None) -> PreparedData
    load_source(path, *, subset="", split="train", objective="sft", progress=None) -> Source
    bundled_dataset_path(objective) -> Path
    detect_format(rows, *, column_map=None, override="auto") -> Detection
    suggest_column_map(columns) -> dict[str, str]
    preview_example(row, tokenizer=None, template=None) -> list[Preview]
    method_fit(format) -> dict[objective, {"ok", "why"}]
    resolve_chat_template(tokenizer, choice="auto") -> TemplateChoice
    training_chat_template(template_or_tokenizer) -> str | None
    split_indices(n, *, val_fraction, val_count, seed, labels) -> (train, validation)
    CHATML_TEMPLATE, LLAMA3_TEMPLATE (and their *_TRAINING_TEMPLATE twins)
    DataError (a SparkError)

Where each part lives: `loaders` picks the reader of a source (`read_json`,
`read_flat`, `read_datasets`; all return a `source.Source`); `formats` detects
the format, `normalize` maps rows to the objective's layout, `lint` names the
problems; `prepare` runs the whole step, with `clean` (the per-row pass),
`report` (the report's numbers) and `output` (`PreparedData`, the Arrow
DatasetDict, writing it); `templates`, `tokens` and `preview` render and count.
Recipes from the course live in `spark_tui.core.data.recipes`.
`progress` callbacks are called as ``progress(stage, done, total)``; raise from
one to cancel.
"""

from __future__ import annotations

from spark_tui.core.data.errors import DataError
from spark_tui.core.data.fit import method_fit, supported
from spark_tui.core.data.formats import (
    FORMAT_TITLES,
    FORMATS,
    Detection,
    detect_format,
    suggest_column_map,
)
from spark_tui.core.data.lint import CATEGORIES, RECOMMENDED_DROP, kto_balance, parse_drop
from spark_tui.core.data.loaders import bundled_dataset_path, load_source
from spark_tui.core.data.output import (
    PreparedData,
    build_dataset_dict,
    features_for,
    write_prepared,
)
from spark_tui.core.data.prepare import prepare_dataset
from spark_tui.core.data.preview import Preview, Segment, preview_example
from spark_tui.core.data.read_datasets import hub_offline
from spark_tui.core.data.source import Source
from spark_tui.core.data.split import split_indices
from spark_tui.core.data.templates import (
    CHATML_TEMPLATE,
    CHATML_TRAINING_TEMPLATE,
    LLAMA3_TEMPLATE,
    LLAMA3_TRAINING_TEMPLATE,
    TemplateChoice,
    resolve_chat_template,
    training_chat_template,
)

__all__ = [
    "CATEGORIES",
    "CHATML_TEMPLATE",
    "CHATML_TRAINING_TEMPLATE",
    "FORMATS",
    "FORMAT_TITLES",
    "LLAMA3_TEMPLATE",
    "LLAMA3_TRAINING_TEMPLATE",
    "RECOMMENDED_DROP",
    "DataError",
    "Detection",
    "PreparedData",
    "Preview",
    "Segment",
    "Source",
    "TemplateChoice",
    "build_dataset_dict",
    "bundled_dataset_path",
    "detect_format",
    "features_for",
    "hub_offline",
    "kto_balance",
    "load_source",
    "method_fit",
    "parse_drop",
    "prepare_dataset",
    "preview_example",
    "resolve_chat_template",
    "split_indices",
    "suggest_column_map",
    "supported",
    "training_chat_template",
    "write_prepared",
]
