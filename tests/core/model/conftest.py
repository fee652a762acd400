"""Fixtures of the Model-step tests: an offline, token-free HF setup, model folders, an HF cache,
and a fixed /proc/meminfo."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from spark_tui.core.model import sysmem

LLAMA_CFG = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "num_hidden_layers": 2,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 1000,
    "tie_word_embeddings": True,
    "max_position_embeddings": 4096,
}


@pytest.fixture
def hf_offline(monkeypatch, tmp_path):
    """An empty HF cache under tmp_path, HF_HUB_OFFLINE=1, and no token anywhere."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))


@pytest.fixture
def llama_cfg() -> dict[str, Any]:
    """A tiny Llama config.json (2 layers, hidden 64)."""
    return dict(LLAMA_CFG)


def _make_folder(
    root: Path,
    *,
    config: bool = True,
    weights: bool = True,
    tokenizer: bool = True,
    template: bool = True,
    extra_cfg: dict | None = None,
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if config:
        (root / "config.json").write_text(json.dumps({**LLAMA_CFG, **(extra_cfg or {})}))
    if weights:
        (root / "model.safetensors").write_bytes(b"\0" * 128)
    if tokenizer:
        (root / "tokenizer.json").write_text("{}")
    tc: dict = {"model_max_length": 4096}
    if template:
        tc["chat_template"] = "{% for m in messages %}{{ m.content }}{% endfor %}"
    (root / "tokenizer_config.json").write_text(json.dumps(tc))
    return root


def _fake_cache(cache: Path, repo: str, *, weights: bool) -> Path:
    repo_dir = cache / ("models--" + repo.replace("/", "--"))
    snap = repo_dir / "snapshots" / "abc123"
    blobs = repo_dir / "blobs"
    snap.mkdir(parents=True)
    blobs.mkdir()
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text("abc123")
    files = {"config.json": json.dumps(LLAMA_CFG).encode(), "tokenizer.json": b"{}"}
    if weights:
        files["model.safetensors"] = b"\0" * 1000
    for i, (name, data) in enumerate(files.items()):
        blob = blobs / f"blob{i}"
        blob.write_bytes(data)
        (snap / name).symlink_to(blob)
    return snap


@pytest.fixture
def make_folder() -> Callable[..., Path]:
    """make_folder(root, config=, weights=, tokenizer=, template=, extra_cfg=): a model folder."""
    return _make_folder


@pytest.fixture
def fake_cache() -> Callable[..., Path]:
    """fake_cache(cache, repo, weights=): a HF-cache repo (refs/main, blobs, symlinked snapshot)."""
    return _fake_cache


MEMINFO = """MemTotal:       125000000 kB
MemFree:         20000000 kB
MemAvailable:    90000000 kB
Buffers:          1000000 kB
Cached:          65000000 kB
SwapCached:             0 kB
SwapTotal:        8000000 kB
SwapFree:         6000000 kB
"""


@pytest.fixture
def meminfo(monkeypatch, tmp_path) -> Path:
    """A fixed /proc/meminfo (125 GB total, 65 GB cached) that every reader sees."""
    p = tmp_path / "meminfo"
    p.write_text(MEMINFO)
    real = sysmem.read_meminfo
    monkeypatch.setattr(sysmem, "read_meminfo", lambda path=p: real(path))
    return p
