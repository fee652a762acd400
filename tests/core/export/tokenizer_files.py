"""Editing a saved tokenizer folder the way some real checkpoints ship it.

A plain module (not conftest): tests import it by name, and `conftest` is
ambiguous once several test folders have one.
"""

from __future__ import annotations

import json
from pathlib import Path


def set_tokenizer_config(folder: Path, **values) -> None:
    """Set keys in tokenizer_config.json (transformers 5 drops some, e.g. `legacy`, on save)."""
    path = folder / "tokenizer_config.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(values)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
