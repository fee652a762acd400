"""`Source`: the rows read from one source, and the byte reading every file reader shares.

Each reader (`read_json`, `read_flat`, `read_datasets`) returns a `Source`;
the whole-file readers go through `read_bytes` (progress as bytes read) and
`decode_all` (UTF-8 with or without BOM, UTF-16 with a BOM) so an unreadable
or wrongly encoded file gets the same message whatever its format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spark_tui.core.data.errors import DataError

Progress = Callable[[str, float, float | None], None]


def notify(progress: Progress | None, stage: str, done: float, total: float | None) -> None:
    """Call `progress` when there is one."""
    if progress is not None:
        progress(stage, done, total)


@dataclass
class Source:
    """Rows read from one source, with where they came from."""

    rows: list[dict[str, Any]]
    path: str
    kind: str
    lines: list[int] | None = None  # source line of each row, for line-based files
    notes: list[str] = field(default_factory=list)
    size_bytes: int | None = None
    invalid_utf8_rows: set[int] = field(default_factory=set)  # rows decoded with replacement

    @property
    def columns(self) -> list[str]:
        """Every key seen in the first rows, in order of first appearance."""
        seen: dict[str, None] = {}
        for row in self.rows[:1000]:
            for key in row:
                seen.setdefault(key, None)
        return list(seen)

    def where(self, index: int) -> str:
        """'line 12' for line-based files, else 'row 12' (1-based)."""
        if self.lines is not None and index < len(self.lines):
            return f"line {self.lines[index]}"
        return f"row {index + 1}"

    def info(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "rows": len(self.rows),
            "columns": self.columns,
            "size_bytes": self.size_bytes,
            "notes": list(self.notes),
        }


def read_bytes(p: Path, progress: Progress | None) -> bytes:
    """The whole file, reporting bytes read as the "reading" stage."""
    try:
        size = p.stat().st_size
        chunks = []
        done = 0
        with open(p, "rb") as fh:
            while True:
                chunk = fh.read(8 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
                done += len(chunk)
                if progress:
                    progress("reading", done, size)
        return b"".join(chunks)
    except OSError as exc:
        raise DataError(f"cannot read this file ({exc.strerror})", path=str(p)) from exc


def decode_all(p: Path, data: bytes) -> tuple[str, list[str]]:
    """Decode a whole file: UTF-8 (with or without BOM) or UTF-16 with a BOM."""
    notes: list[str] = []
    if not data.strip():
        raise DataError("the file is empty; add rows to it or pick another file", path=str(p))
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        notes.append("read as UTF-16 (it has a UTF-16 byte-order mark)")
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].decode("utf-16", errors="ignore").count("\n") + 1
            raise DataError(
                f"starts with a UTF-16 byte-order mark but is not valid UTF-16 ({exc.reason} "
                f"at byte offset {exc.start}); re-save the file as UTF-8",
                path=str(p),
                line=line,
            ) from exc
    else:
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise DataError(
                f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                "re-save the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 FILE > FILE.utf8`",
                path=str(p),
                line=line,
            ) from exc
    if not text.strip():
        raise DataError("the file is empty; add rows to it or pick another file", path=str(p))
    return text, notes
