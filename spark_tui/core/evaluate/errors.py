"""The Evaluate room's errors, in one low module every other module of the room can raise.

`EvalError` says why a run cannot be evaluated (or its model loaded) and what to
do about it; `EvalCancelled` ends an evaluation whose cancel check returned True.
"""

from __future__ import annotations

from spark_tui.core.base.errors import SparkError


class EvalError(SparkError):
    """A run that cannot be evaluated; the message says why and what to do."""


class EvalCancelled(SparkError):
    """The caller's cancel check returned True."""

    def __init__(self) -> None:
        super().__init__("evaluation cancelled")
