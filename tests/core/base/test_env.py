"""The training process's environment defaults: set where missing, never over the user's."""

from __future__ import annotations

import os

from spark_tui.core.base import env


def test_child_env_adds_every_default_and_keeps_the_users(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    child = env.child_env({"TOKENIZERS_PARALLELISM": "true"})
    assert child["OMP_WAIT_POLICY"] == "ACTIVE"  # exported by the user: kept
    assert child["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    assert child["TRL_EXPERIMENTAL_SILENCE"] == "1"
    assert child["TOKENIZERS_PARALLELISM"] == "true"  # the caller's overrides win
    assert "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ  # ours is not changed


def test_apply_defaults_sets_the_library_ones_only(monkeypatch):
    for name in env.DEFAULTS:
        monkeypatch.setenv(name, "")  # so that monkeypatch restores (or removes) each one
        monkeypatch.delenv(name)
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "0")
    env.apply_defaults()
    assert os.environ["TRL_EXPERIMENTAL_SILENCE"] == "0"
    assert os.environ["TOKENIZERS_PARALLELISM"] == "false"
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    assert "OMP_WAIT_POLICY" not in os.environ  # too late in a running process
