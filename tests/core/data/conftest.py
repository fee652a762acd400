"""Fixtures of the data-step tests: the default model's tokenizer and a file writer."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def tokenizer(default_model_dir: Path) -> Any:
    """The bundled default model's tokenizer (SmolLM2: ChatML with a default system prompt)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_model_dir)


@pytest.fixture
def fresh_tokenizer(default_model_dir: Path) -> Any:
    """A tokenizer the test may change (prepare_dataset sets the chosen chat template)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_model_dir)


@pytest.fixture
def two_rows() -> list[dict[str, str]]:
    """Two Alpaca rows, the smallest data every reader must return unchanged."""
    return [
        {"instruction": "Say hi", "input": "", "output": "Hi!"},
        {"instruction": "Add 2 and 3", "input": "", "output": "5"},
    ]


@pytest.fixture
def write_jsonl(tmp_path: Path) -> Callable[..., Path]:
    def write(rows: list[Any], name: str = "data.jsonl") -> Path:
        p = tmp_path / name
        p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return p

    return write


def _alpaca_rows(n: int = 20) -> list[dict[str, str]]:
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    return [
        {
            "instruction": f"Question {i}: what about {words[i % 8]} {i * 7}?",
            "input": "",
            "output": f"Answer {i}: {words[(i * 3) % 8]} comes after {i * 11}.",
        }
        for i in range(n)
    ]


@pytest.fixture
def alpaca_rows() -> Callable[..., list[dict[str, str]]]:
    return _alpaca_rows


def _make_cfg(path: Any, objective: str = "sft", **data: Any) -> Any:
    from spark_tui.config import RunConfig

    cfg = RunConfig()
    cfg.data.path = str(path)
    cfg.method.objective = objective
    for k, v in data.items():
        setattr(cfg.data, k, v)
    return cfg


@pytest.fixture
def make_cfg() -> Callable[..., Any]:
    return _make_cfg
