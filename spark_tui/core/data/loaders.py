"""`load_source`: read rows from any common source into plain Python dicts.

Sources: ``.json`` (an array of rows, or an object holding one), ``.jsonl`` /
``.ndjson``, ``.csv``, ``.tsv``, ``.parquet``, ``.txt`` (plain text for
continued pre-training), a folder written by ``datasets.save_to_disk``, a
Hugging Face Hub dataset id (with subset and split), and the bundled sample
sets ("default").  This module decides which reader a source needs (by
extension, else by its first bytes); the readers live in `read_json`,
`read_flat` and `read_datasets`.

Rows are kept as Python dicts on purpose: Arrow refuses rows whose types
differ (an answer that is a number in one row and text in another), and those
are exactly the rows the lint step must point at rather than crash on.
Reading reports progress (bytes read) through the ``progress`` callback.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from spark_tui.core.data.errors import DataError
from spark_tui.core.data.read_datasets import load_hub, load_saved_folder
from spark_tui.core.data.read_flat import load_csv, load_parquet, load_text, load_tsv
from spark_tui.core.data.read_json import load_json, load_jsonl
from spark_tui.core.data.source import Progress, Source

SUPPORTED = ".json, .jsonl, .ndjson, .csv, .tsv, .parquet, .txt, a save_to_disk folder or a Hub id"
BUNDLED = {
    "sft": "instructions.jsonl",
    "dpo": "preferences.jsonl",
    "simpo": "preferences.jsonl",
    "orpo": "preferences.jsonl",
    "reward": "preferences.jsonl",
    "kto": "kto.jsonl",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def bundled_dataset_path(objective: str = "sft") -> Path:
    """The sample set shipped with spark-tui for an objective ("default" data)."""
    try:
        name = BUNDLED[objective]
    except KeyError:
        raise DataError(
            f"no bundled dataset for objective {objective!r}; known: {', '.join(BUNDLED)}"
        ) from None
    return Path(__file__).resolve().parents[2] / "data" / name


def load_source(
    path: str | os.PathLike[str],
    *,
    subset: str = "",
    split: str = "train",
    objective: str = "sft",
    progress: Progress | None = None,
) -> Source:
    """Read every row of a source.  Raises `DataError` with a message that says what to do."""
    text = str(path).strip()
    if not text:
        raise DataError("no dataset given; pick a file, a folder or a Hub dataset id")
    if text == "default":
        p = bundled_dataset_path(objective)
        if not p.exists():
            raise DataError(
                f"the bundled sample set {p.name} is missing from this installation; "
                "reinstall spark-tui or pick a file"
            )
        src = _load_path(p, split=split, progress=progress)
        src.kind = f"bundled {src.kind}"
        src.notes.append(f"bundled sample set for {objective}")
        return src
    p = Path(text).expanduser()
    if p.exists():
        return _load_path(p, split=split, progress=progress)
    if _looks_like_path(text):
        raise DataError(f"{text}: no such file or folder; check the path (supported: {SUPPORTED})")
    if _HUB_ID.match(text):
        return load_hub(text, subset=subset, split=split, progress=progress)
    raise DataError(f"{text}: no such file, and not a Hub dataset id like 'owner/name'")


def _looks_like_path(text: str) -> bool:
    if text.startswith((".", "/", "~")) or os.sep in text.rstrip("/") and text.count("/") > 1:
        return True
    suffix = Path(text).suffix.lower()
    return suffix in {".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".parquet", ".txt", ".arrow"}


def _load_path(p: Path, *, split: str, progress: Progress | None) -> Source:
    if p.is_dir():
        return load_saved_folder(p, split=split, progress=progress)
    if not os.access(p, os.R_OK):
        raise DataError(
            "cannot read this file (permission denied); check its permissions", path=str(p)
        )
    suffix = "".join(s.lower() for s in p.suffixes[-1:])
    loader = {
        ".jsonl": load_jsonl,
        ".ndjson": load_jsonl,
        ".json": load_json,
        ".csv": load_csv,
        ".tsv": load_tsv,
        ".parquet": load_parquet,
        ".txt": load_text,
    }.get(suffix)
    if loader is None:
        head = _read_head(p).lstrip()
        if head.startswith(b"{"):
            loader = load_jsonl
        elif head.startswith(b"["):
            loader = load_json
        elif head.startswith(b"PAR1"):
            loader = load_parquet
        else:
            raise DataError(
                f"unknown file type {suffix or '(no extension)'}; supported: {SUPPORTED}",
                path=str(p),
            )
    return loader(p, progress=progress)


def _read_head(p: Path, n: int = 64) -> bytes:
    try:
        with open(p, "rb") as fh:
            return fh.read(n)
    except OSError as exc:
        raise DataError(f"cannot read this file ({exc.strerror})", path=str(p)) from exc
