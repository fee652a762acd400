"""Where spark-tui keeps its things: runs, the converted default model, caches."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """`$SPARK_TUI_HOME`, else `$XDG_DATA_HOME/spark-tui`, else `~/.local/share/spark-tui`."""
    env = os.environ.get("SPARK_TUI_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "spark-tui"


def runs_dir() -> Path:
    return home() / "runs"


def cache_dir() -> Path:
    """`$SPARK_TUI_CACHE`, else `$XDG_CACHE_HOME/spark-tui`, else `~/.cache/spark-tui`."""
    env = os.environ.get("SPARK_TUI_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "spark-tui"


def models_dir() -> Path:
    """Converted models (the bundled default model lives here after first use).

    A cache, not run data: it can be rebuilt, and tests that point
    `SPARK_TUI_HOME` at a temporary folder still share one converted model.
    """
    return cache_dir() / "models"


def hf_cache_dir() -> Path:
    env = os.environ.get("HF_HUB_CACHE")
    if env:
        return Path(env)
    hf_home = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
    return Path(hf_home) / "hub"
