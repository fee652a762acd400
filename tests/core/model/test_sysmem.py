"""System memory: /proc/meminfo (psutil fallback), and dropping the page cache only as root."""

from __future__ import annotations

from pathlib import Path

import pytest

from spark_tui.core.base.errors import SparkError
from spark_tui.core.model import sysmem


def test_meminfo_parse(meminfo: Path) -> None:
    mi = sysmem.read_meminfo()
    assert mi["MemTotal"] == 125_000_000 * 1024
    assert mi["Cached"] == 65_000_000 * 1024
    assert sysmem.read_meminfo(meminfo.parent / "missing")["MemTotal"] > 0  # psutil fallback


def test_drop_page_cache_refuses_without_root(monkeypatch, tmp_path) -> None:
    calls = []
    monkeypatch.setattr(sysmem, "is_root", lambda: False)
    with pytest.raises(SparkError, match="root"):
        sysmem.drop_page_cache(
            runner=lambda *a, **k: calls.append(a), drop_caches_path=tmp_path / "x"
        )
    assert calls == [] and not (tmp_path / "x").exists()


def test_drop_page_cache_as_root_uses_argument_lists(monkeypatch, tmp_path) -> None:
    calls = []
    monkeypatch.setattr(sysmem, "is_root", lambda: True)
    target = tmp_path / "drop_caches"
    sysmem.drop_page_cache(
        runner=lambda args, **kw: calls.append((args, kw)), drop_caches_path=target
    )
    assert calls and calls[0][0] == ["sync"]
    assert "shell" not in calls[0][1]
    assert target.read_text().strip() == "3"


def test_drop_page_cache_reports_a_read_only_proc(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(sysmem, "is_root", lambda: True)
    with pytest.raises(SparkError, match="drop_caches"):
        sysmem.drop_page_cache(
            runner=lambda *a, **k: None, drop_caches_path=tmp_path / "no" / "such" / "file"
        )
