"""Resolving a model choice offline: bundled default, catalogue, HF cache, local folder, Hub id."""

from __future__ import annotations

import json

import pytest

from spark_tui.core.model import catalog
from spark_tui.core.model import sources as model_sources
from spark_tui.core.model.folder import ModelSourceError

pytestmark = pytest.mark.usefixtures("hf_offline")


def test_resolve_cached_hub_model_offline(tmp_path, fake_cache) -> None:
    fake_cache(tmp_path / "hf-cache", "someorg/tiny-model", weights=True)
    info = model_sources.resolve("someorg/tiny-model")
    assert info.source == "cache" and info.present_locally
    assert info.arch is not None and info.arch.hidden_size == 64
    assert model_sources.architecture_for("someorg/tiny-model") == info.arch


def test_resolve_catalogue_offline_gated(monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_SECRET_value_123")
    info = model_sources.resolve("llama-3.1-8b")
    assert info.source == "catalogue" and info.gated and not info.present_locally
    text = " ".join(info.messages)
    assert "HF_TOKEN" in text and "hf auth login" in text and "request access" in text
    assert "not downloaded" in text
    dumped = json.dumps(info.to_dict())
    assert "hf_SECRET_value_123" not in dumped  # the token is never returned


def test_resolve_default_model() -> None:
    info = model_sources.resolve("default")
    assert info.source == "bundled"
    assert info.arch == catalog.get("default").arch
    assert info.hub_id == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_resolve_local_folder_reports_problems(tmp_path, make_folder) -> None:
    folder = make_folder(tmp_path / "m", tokenizer=False)
    info = model_sources.resolve(str(folder))
    assert info.source == "local" and not info.present_locally
    assert any("no tokenizer" in w for w in info.warnings)


def test_resolve_rejects_nonsense() -> None:
    with pytest.raises(ModelSourceError, match="not a local folder"):
        model_sources.resolve("not a model id")


def test_unknown_hub_id_offline_says_so() -> None:
    info = model_sources.resolve("someone/unknown-model")
    assert info.arch is None
    assert any("Offline" in m or "offline" in m for m in info.messages)
