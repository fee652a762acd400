"""Fingerprints of a run's data sources, so a resume can tell whether they changed.

A resume trains on the data prepared when the run started (`<run>/data`);
the fingerprint recorded then says whether the source has changed or gone
since, which the run reports instead of silently preparing something else.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from spark_tui.core.data.loaders import bundled_dataset_path

_CHUNK = 1 << 20


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(spec: str, objective: str = "sft") -> dict[str, Any] | None:
    """What a source is now: a file or folder (with the SHA-256 of its bytes), or a Hub id."""
    text = str(spec or "").strip()
    if not text:
        return None
    path = bundled_dataset_path(objective) if text == "default" else Path(text).expanduser()
    if path.is_file():
        return {"source": text, "kind": "file", "path": str(path.resolve()),
                "bytes": path.stat().st_size, "sha256": _file_digest(path)}  # fmt: skip
    if path.is_dir():
        h = hashlib.sha256()
        files = sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            h.update(f"{f.relative_to(path)}\0{_file_digest(f)}\n".encode())
        return {"source": text, "kind": "folder", "path": str(path.resolve()),
                "bytes": sum(f.stat().st_size for f in files), "sha256": h.hexdigest()}  # fmt: skip
    if "/" in text and not text.startswith((".", "/", "~")):
        return {"source": text, "kind": "hub"}  # a Hub id: known by name only
    return {"source": text, "kind": "missing"}


def changes(recorded: dict[str, Any] | None, role: str, objective: str = "sft") -> list[str]:
    """What differs now from the fingerprint `recorded` at first preparation (one line each)."""
    if not recorded:
        return []
    now = fingerprint(recorded["source"], objective)
    where = recorded.get("path") or recorded["source"]
    if recorded["kind"] == "hub":
        return []
    if now is None or now["kind"] == "missing":
        return [f"the {role} source {where} is gone; resuming on the copy prepared at the start"]
    if now.get("sha256") != recorded.get("sha256"):
        return [
            f"the {role} source {where} changed since the run started; resuming on the copy "
            "prepared then (start a new run to train on the new data)"
        ]
    return []
