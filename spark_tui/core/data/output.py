"""What preparation produces: `PreparedData`, its Arrow `DatasetDict`, and writing both to disk.

Each layout has one Arrow schema (`features_for`), so the training process,
the evaluation and a later ``load_from_disk`` all see the same columns;
`write_prepared` puts the dataset and its report into a run's data folder.
`datasets` and `pyarrow` are imported only when a dataset is built.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spark_tui.core.base.names import DATA_REPORT
from spark_tui.core.data.errors import DataError
from spark_tui.core.data.formats import Detection
from spark_tui.core.data.source import Progress, Source, notify
from spark_tui.core.data.templates import TemplateChoice


@dataclass
class PreparedData:
    """The prepared dataset and everything the step decided."""

    dataset: Any  # datasets.DatasetDict with "train" and "validation"
    report: dict[str, Any]
    detection: Detection | None  # None when loaded back from a run folder
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


def features_for(layout: str) -> Any:
    """The `datasets.Features` (Arrow schema) of a layout."""
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
    from spark_tui.core.base.atomic import atomic_write_json

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
    notify(progress, "writing", 0, 1)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with _no_progress_bars():
            prepared.dataset.save_to_disk(str(out_dir))
    except OSError as exc:
        raise DataError(
            f"{out_dir}: cannot write the prepared data ({exc.strerror or exc})"
        ) from exc
    atomic_write_json(out_dir / DATA_REPORT, prepared.report)
    notify(progress, "writing", 1, 1)
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


def load_prepared(out_dir: Path, tokenizer: Any, chat_template: str = "auto") -> PreparedData | None:
    """The data a run prepared earlier (what a resume trains on), or None when it is not there.

    The chat template is resolved again from the same tokenizer and setting, and set
    on the tokenizer, as the first preparation did.
    """
    import json

    from spark_tui.core.data.templates import apply_template_to_tokenizer, resolve_chat_template

    out_dir = Path(out_dir)
    try:
        report = json.loads((out_dir / DATA_REPORT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (out_dir / "dataset_dict.json").is_file():
        return None
    dataset = read_prepared(out_dir, report.get("layout", ""))
    template = None
    if tokenizer is not None and report.get("layout") != "text":
        template = resolve_chat_template(tokenizer, chat_template)
        apply_template_to_tokenizer(tokenizer, template)
    return PreparedData(dataset, report, None, template, report.get("layout", ""))


def read_prepared(out_dir: Path, layout: str = "") -> Any:
    """The DatasetDict `write_prepared` saved, empty splits included.

    `datasets` saves an empty split with no data file and then cannot load the
    folder back (IndexError); such a split is rebuilt empty with its layout's schema.
    """
    import json

    from datasets import DatasetDict, load_from_disk

    out_dir = Path(out_dir)
    names = json.loads((out_dir / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
    parts: dict[str, Any] = {}
    with _no_progress_bars():
        for name in names:
            state = json.loads((out_dir / name / "state.json").read_text(encoding="utf-8"))
            if state.get("_data_files"):
                parts[name] = load_from_disk(str(out_dir / name))
            else:
                parts[name] = build_dataset_dict([], [], layout or "messages")["train"]
    return DatasetDict(parts)
