"""Mute library logging and warnings while models load, score or chat.

torch / transformers / peft would otherwise print over the TUI; every model call
of the Evaluate room runs inside `quiet()`.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Mute library logging and warnings (they would draw over the TUI)."""
    from spark_tui.core.model.resolve import quiet_transformers

    loggers = [
        logging.getLogger(n) for n in ("bitsandbytes", "peft", "accelerate", "absl", "datasets")
    ]
    old = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), quiet_transformers():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lvl in zip(loggers, old, strict=True):
            lg.setLevel(lvl)
