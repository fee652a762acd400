"""Modules stay small enough to hold in mind, and the core keeps its rooms (issue 12)."""

from __future__ import annotations

from pathlib import Path

import spark_tui

PKG_ROOT = Path(spark_tui.__file__).parent
MAX_LINES = 500
ROOMS = {"base", "model", "memory", "data", "method", "review", "train", "evaluate", "export"}


def _line_count(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for _ in fh)


def test_no_module_over_500_lines():
    # spark_tui/data/ holds bundled sample data, not code.
    sources = [p for p in PKG_ROOT.rglob("*.py") if "data" not in p.relative_to(PKG_ROOT).parts[:1]]
    assert len(sources) > 50
    too_big = {str(p.relative_to(PKG_ROOT)): n for p in sources if (n := _line_count(p)) > MAX_LINES}
    assert too_big == {}, f"split these along their seams (limit {MAX_LINES} lines): {too_big}"


def test_core_is_made_of_rooms():
    core = PKG_ROOT / "core"
    loose = sorted(p.name for p in core.glob("*.py") if p.name != "__init__.py")
    assert loose == [], "every core module belongs to a room (docs/architecture.md)"
    rooms = {p.name for p in core.iterdir() if (p / "__init__.py").is_file()}
    assert rooms == ROOMS
    # tests/core/ mirrors the rooms one to one, so a behaviour's tests are one hop away.
    test_rooms = {p.name for p in (PKG_ROOT.parent / "tests" / "core").iterdir() if p.is_dir()}
    assert (test_rooms - {"__pycache__"}) <= ROOMS


def test_architecture_doc_names_every_room_and_module():
    """docs/architecture.md is the map: a module it does not name is one nobody will find."""
    doc = (PKG_ROOT.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = []
    for room in sorted(ROOMS):
        if f"`core/{room}/`" not in doc:
            missing.append(f"core/{room}/")
        # export/__init__.py lists its own modules; the doc points there
        where = (PKG_ROOT / "core" / "export" / "__init__.py").read_text() if room == "export" else doc
        for mod in sorted((PKG_ROOT / "core" / room).glob("*.py")):
            if mod.stem != "__init__" and f"`{mod.stem}`" not in where.replace("``", "`"):
                missing.append(f"core/{room}/{mod.name}")
    assert missing == []
