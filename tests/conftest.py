"""Shared fixtures.  Tests never touch the user's real spark-tui home or the network."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Set before any spark_tui module reads them.  The converted default model is a
# cache shared across test sessions (SPARK_TUI_CACHE is left alone), but runs go
# to a throwaway home.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="spark-tui-test-home-"))
os.environ["SPARK_TUI_HOME"] = str(_SESSION_HOME)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("WANDB_DISABLED", "true")


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """The bundled default model, converted once (real conversion, cached on disk)."""
    from spark_tui.core.model.resolve import ensure_default_model

    return ensure_default_model()


@pytest.fixture
def spark_home(tmp_path, monkeypatch) -> Path:
    """A fresh spark-tui home for one test."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("SPARK_TUI_HOME", str(home))
    return home


async def _wait_until(pilot, cond, timeout: float, what: str) -> None:
    """Let the app run until `cond()` holds; fail naming `what` after `timeout` seconds."""
    import asyncio
    import time

    end = time.time() + timeout
    while time.time() < end:
        await pilot.pause()
        if cond():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; screen: {pilot.app.screen!r}")


@pytest.fixture
def wait_until():
    """`await wait_until(pilot, cond, timeout, what)` for Pilot tests of slow workers."""
    return _wait_until
