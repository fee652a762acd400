"""Data files the user prepared before, newest first, offered again by the Dataset step.

Kept in `<home>/recent_data.json` (a list of absolute paths and Hub ids); files
that no longer exist are left out when read, so the list never offers a dead end.
Only the path is kept, never the data.
"""

from __future__ import annotations

import os
from pathlib import Path

from spark_tui.core.base import paths
from spark_tui.core.base.atomic import atomic_write_json, read_json

RECENT_FILE = "recent_data.json"
KEEP = 8


def _file() -> Path:
    return paths.home() / RECENT_FILE


def resolve_typed(text: str, cwd: str | Path | None = None) -> str:
    """A typed path as the data config keeps it: `~` expanded, relative paths made
    absolute against the folder spark-tui was started from; Hub ids (`org/name`
    that is not a local path) stay as typed."""
    text = text.strip()
    if not text:
        return text
    p = Path(os.path.expanduser(text))
    base = Path(cwd) if cwd is not None else Path.cwd()
    if not p.is_absolute():
        if not (base / p).exists() and _looks_like_hub_id(text):
            return text
        p = base / p
    return str(p.resolve())


def _looks_like_hub_id(text: str) -> bool:
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not text.startswith((".", "~"))


def recent(limit: int = KEEP) -> list[str]:
    """Remembered sources, newest first; local files that are gone are skipped."""
    items = read_json(_file(), default=[])
    if not isinstance(items, list):
        return []
    out: list[str] = []
    for item in items:
        if not isinstance(item, str) or item in out:
            continue
        if os.path.isabs(item) and not os.path.exists(item):
            continue
        out.append(item)
    return out[:limit]


def remember(source: str) -> None:
    """Put `source` first in the list (bundled sets are not remembered)."""
    if not source or source == "default":
        return
    try:
        items = [x for x in read_json(_file(), default=[]) or [] if isinstance(x, str)]
    except TypeError:
        items = []
    items = [source, *[x for x in items if x != source]][: KEEP * 2]
    try:
        atomic_write_json(_file(), items)
    except OSError:
        pass  # a read-only home costs the list, never the preparation
