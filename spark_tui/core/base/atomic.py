"""Small file-system helpers: atomic writes so a crash never leaves half a file behind."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_text(path: Path, text: str, *, in_place_when_full: bool = False) -> None:
    """Write `text` to `path` via a temp file in the same folder and `os.replace`.

    `in_place_when_full`: when the disk is full (the temp file cannot be
    written) and `path` exists, rewrite it in place instead — padded with
    spaces to its old length, so a reader never sees a torn tail.  For the
    few small files that must record why a run ended on a full disk.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        if in_place_when_full and _is_full(exc) and path.exists():
            _rewrite_in_place(path, text)
            return
        raise
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if in_place_when_full and isinstance(exc, OSError) and _is_full(exc) and path.exists():
            _rewrite_in_place(path, text)
            return
        raise


def _is_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _rewrite_in_place(path: Path, text: str) -> None:
    """Overwrite `path`'s existing blocks (no new ones needed while it does not grow)."""
    data = text.encode("utf-8")
    old = path.stat().st_size
    if len(data) < old:
        data = data.rstrip(b"\n") + b"\n" + b" " * (old - len(data))  # JSON allows trailing blanks
    with open(path, "r+b") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total
