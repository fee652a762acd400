"""train.log: where the training process's output goes, and the libraries kept quiet in it.

The detached trainer points fds 1/2 at train.log (`redirect_output`), so every
library and C extension writes there; our own log lines are timestamped
(`log_handler`).  In-process callers (tests, benchmark) keep their own output
and get only our lines in train.log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from spark_tui.core.base.env import apply_defaults


@contextlib.contextmanager
def redirect_output(log_path: Path) -> Iterator[None]:
    """Point fds 1 and 2 (and so every library and C extension) at train.log."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    saved = os.dup(1), os.dup(2)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        with contextlib.suppress(Exception):
            sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
            sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        os.close(fd)


@contextlib.contextmanager
def log_handler(log_path: Path, to_stderr: bool) -> Iterator[None]:
    """Our own log lines (timestamped) into train.log."""
    root = logging.getLogger("spark_tui")
    handler: logging.Handler
    if to_stderr:
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()


def quiet_libraries() -> None:
    """No progress bars and no info chatter from the libraries in train.log."""
    apply_defaults()
    with contextlib.suppress(Exception):
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_warning()
        hf_logging.disable_progress_bar()
    with contextlib.suppress(Exception):
        import datasets

        datasets.disable_progress_bars()
