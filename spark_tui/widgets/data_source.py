"""Where the Dataset step's data comes from: bundled sets, recent files, a file tree.

The tree opens in the folder spark-tui was started from (`Path.cwd()`), typed
paths are read relative to it, and files prepared before are offered again
(`core.data.recent`) so the second visit is one pick, not a retype.
"""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DirectoryTree

from spark_tui.core.data import recent as recent_core

DATA_SUFFIXES = {".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".parquet", ".txt"}
BUNDLED = {
    "bundled:sft": ("Bundled: Sparky instructions (SFT)", "sft"),
    "bundled:dpo": ("Bundled: preference pairs (DPO/SimPO/ORPO)", "dpo"),
    "bundled:kto": ("Bundled: thumbs up/down (KTO)", "kto"),
}
FILE_KEY = "file"
RECENT_PREFIX = "recent:"
LABEL_WIDTH = 44  # the source select is 46 cells wide


def _short(source: str, cwd: Path) -> str:
    """A recent source as the list shows it: relative to the start folder when inside it."""
    p = Path(source)
    try:
        text = str(p.relative_to(cwd)) if p.is_absolute() else source
    except ValueError:
        text = str(p).replace(str(Path.home()), "~", 1)
    label = f"Recent: {text}"
    return label if len(label) <= LABEL_WIDTH else "Recent: …" + text[-(LABEL_WIDTH - 9):]


def source_options(current: str = "") -> list[tuple[str, str]]:
    """(label, key) of every source the select offers: bundled sets, recent files, a path."""
    cwd = Path.cwd()
    opts = [(label, key) for key, (label, _obj) in BUNDLED.items()]
    seen = set()
    for src in [*([current] if current else []), *recent_core.recent()]:
        if src in seen or not src or src == "default":
            continue
        seen.add(src)
        opts.append((_short(src, cwd), RECENT_PREFIX + src))
    opts.append(("A file or Hub id…", FILE_KEY))
    return opts


class DataFileTree(DirectoryTree):
    """A directory tree showing only folders and data files, rooted at the start folder."""

    def __init__(self, path: str | Path | None = None, **kwargs) -> None:
        super().__init__(Path.cwd() if path is None else path, **kwargs)

    def filter_paths(self, paths):
        return [
            p for p in paths
            if not p.name.startswith(".") and (p.is_dir() or p.suffix.lower() in DATA_SUFFIXES)
        ]  # fmt: skip
