"""The core never imports Textual; the app opens without torch/transformers."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import spark_tui
import spark_tui.core

FORBIDDEN = ("textual", "questionary", "spark_tui.screens", "spark_tui.widgets", "spark_tui.app")
PKG_ROOT = Path(spark_tui.__file__).parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_core_modules_never_import_textual():
    core_files = sorted((PKG_ROOT / "core").rglob("*.py"))
    assert len(core_files) >= 5
    offenders = {
        str(f.relative_to(PKG_ROOT)): sorted(
            n for n in _imports(f) if any(n == b or n.startswith(b + ".") for b in FORBIDDEN)
        )
        for f in core_files
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_every_core_module_loads_no_textual():
    names = [m.name for m in pkgutil.walk_packages(spark_tui.core.__path__, "spark_tui.core.")]
    code = (
        "import importlib, sys\n"
        f"for n in {names!r}:\n"
        "    if n.endswith('train.entry'): continue\n"
        "    importlib.import_module(n)\n"
        "bad = [m for m in sys.modules if m == 'textual' or m.startswith('textual.')]\n"
        "print(len(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "0"


def test_import_linter_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run(
        [str(exe), str(PKG_ROOT.parent / "pyproject.toml")],
        capture_output=True,
        text=True,
        cwd=PKG_ROOT.parent,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "KEPT" in out.stdout


def test_app_import_does_not_load_torch_or_transformers():
    code = (
        "import sys, spark_tui.app\n"
        "print(sorted(m for m in ('torch','transformers','trl','peft','datasets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
