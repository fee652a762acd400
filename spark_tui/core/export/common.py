"""Shared pieces of the deploy pipeline: errors, progress callbacks, atomic outputs.

Every output of the pipeline (merged folder, GGUF files, Modelfile) is first
written under a hidden temporary name in the destination folder and renamed
into place only once it is complete, so a crash, a full disk or Ctrl-C never
leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from spark_tui.core.base.errors import SparkError

# progress(stage, done, total): stage is a short label ("merge", "write",
# "quantize", "verify", "upload"); done/total are in the stage's own unit
# (tensors, bytes, steps).  total may be 0 when unknown.
Progress = Callable[[str, int, int], None]


# The one test question of the deploy step (GGUF verification's chat answer and the
# Ollama test prompt): one the bundled 135M model answers briefly and stops after; the
# plain "What is the capital of France?" rambles at q4_k_m until the token limit.
TEST_QUESTION = "What is the capital of France? Answer in one word."


class ExportError(SparkError):
    """A deploy step that cannot go on; the message names the file/setting and what to do."""


class UnsupportedModelError(ExportError):
    """The model's architecture or tokenizer is not one the exporter handles."""


def read_json_file(path: Path, missing: str) -> dict[str, Any]:
    """A JSON file the pipeline needs; `missing` says what its absence means and what to do."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ExportError(f"{path} is missing: {missing}") from exc
    except json.JSONDecodeError as exc:
        raise ExportError(f"{path} is not valid JSON ({exc})") from exc


def report(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


def temp_sibling(final: Path, suffix: str = ".tmp") -> Path:
    """A fresh hidden name next to `final` (same file system, so rename is atomic)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix, dir=final.parent)
    os.close(fd)
    os.unlink(name)
    return Path(name)


def remove_path(path: Path) -> None:
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class DiskFullError(ExportError):
    """The disk filled up while an output was written (the partial file is gone)."""


def disk_full_error(folder: Path, what: str, need: int | None) -> DiskFullError:
    """ "disk full at <folder>: the GGUF needs ~N GB, M GB free" (free measured now)."""
    from spark_tui.core.train.disk import free_bytes, gb

    try:
        free = f"{gb(free_bytes(folder))} GB free"
    except OSError:
        free = "free space unknown"
    needs = f"{what} needs ~{gb(need)} GB" if need else f"{what} did not fit"
    return DiskFullError(
        f"disk full at {folder}: {needs}, {free}; free space or write to another folder"
    )


@contextlib.contextmanager
def atomic_output(
    final: Path, *, is_dir: bool = False, need: int | None = None, what: str | None = None
) -> Iterator[Path]:
    """Yield a temp path to write to; on success it replaces `final`, on error it is removed.

    For folders the old `final` (if any) is moved aside first and deleted only
    after the new one is in place.  A full disk while writing becomes a
    `DiskFullError` naming the folder, `need` (bytes of `what`, e.g. "the GGUF")
    and what is free once the partial output is gone.
    """
    from spark_tui.core.train.disk import is_disk_full

    final = Path(final)
    tmp = temp_sibling(final)
    if is_dir:
        tmp.mkdir()
    try:
        yield tmp
    except BaseException as exc:
        # Judged before the partial output goes: an unexplained short write counts as a
        # full disk only while the disk is (nearly) full.
        full = isinstance(exc, Exception) and is_disk_full(exc, final.parent)
        remove_path(tmp)
        if full and not isinstance(exc, DiskFullError):
            raise disk_full_error(final.parent, what or final.name, need) from exc
        raise
    if is_dir:
        old = None
        if final.exists():
            old = temp_sibling(final, suffix=".old")
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            remove_path(old)
    else:
        with contextlib.suppress(OSError):
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, final)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover
