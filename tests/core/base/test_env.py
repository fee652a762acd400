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


def test_no_hub_kernels_in_any_process_unless_the_user_says_so():
    """transformers 5.2x kernelizes every loaded model with code from the Hub by default
    (and raises when `kernels` is missing, as it did on a GPU machine): importing spark_tui
    turns that off, in the way transformers itself reads it."""
    import subprocess
    import sys

    probe = (
        "import spark_tui\n"
        "try:\n"
        "    from transformers.integrations.hub_kernels import _kernels_enabled\n"
        "except ImportError:\n"
        "    print('n/a')\n"
        "else:\n"
        "    print(_kernels_enabled())\n"
    )
    base = {k: v for k, v in os.environ.items() if k != "USE_HUB_KERNELS"}
    for exported, expected in ((None, "False"), ("1", "True")):
        child = dict(base, **({"USE_HUB_KERNELS": exported} if exported else {}))
        out = subprocess.run([sys.executable, "-c", probe], env=child, capture_output=True,
                             text=True, check=True).stdout.split()[-1]  # fmt: skip
        assert out in (expected, "n/a"), (exported, out)
