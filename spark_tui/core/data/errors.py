"""The data step's user-facing error: names the file, line and column, and what to do."""

from __future__ import annotations

from spark_tui.core.base.errors import SparkError


class DataError(SparkError, ValueError):
    """A dataset that cannot be loaded or prepared.

    The message is complete on its own ("data.jsonl, line 12, column 30: ...
    Fix that line or remove it."); `path`, `line` and `column` are kept as
    attributes so the TUI can jump to the spot.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        where = ""
        if path:
            where = str(path)
            if line is not None:
                where += f", line {line}"
                if column is not None:
                    where += f", column {column}"
            where += ": "
        super().__init__(where + message)
        self.path = path
        self.line = line
        self.column = column
