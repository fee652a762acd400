"""CLI subcommands, one module per area.  Each module defines `register(subparsers)`.

Every handler is thin: it parses arguments, calls `spark_tui.core`, prints.
Keeping each area in its own module lets the areas grow independently.
"""

from __future__ import annotations

import importlib

# Listed explicitly (not discovered) so the order of `spark-tui --help` is stable.
MODULES = ["train", "runs", "data", "recipe", "model", "memory", "evaluate", "deploy", "quickstart", "handoff"]


def load_all():
    """Import every command module that exists (areas may be added over time)."""
    mods = []
    for name in MODULES:
        try:
            mods.append(importlib.import_module(f"spark_tui.commands.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"spark_tui.commands.{name}":
                raise
    return mods
