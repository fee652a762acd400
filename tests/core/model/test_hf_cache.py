"""The local Hugging Face cache: listing, case-insensitive lookup, complete snapshots only."""

from __future__ import annotations

import json
import os

import pytest

from spark_tui.core.model.folder import ModelSourceError
from spark_tui.core.model.hf_cache import cached_snapshot, list_cached_models, local_snapshot

pytestmark = pytest.mark.usefixtures("hf_offline")


def test_hf_cache_listing(tmp_path, fake_cache) -> None:
    cache = tmp_path / "hf-cache"
    fake_cache(cache, "someorg/tiny-model", weights=True)
    fake_cache(cache, "other/config-only", weights=False)
    found = {c.repo_id: c for c in list_cached_models()}
    assert set(found) == {"someorg/tiny-model", "other/config-only"}
    assert found["someorg/tiny-model"].has_weights and found["someorg/tiny-model"].size_bytes > 1000
    assert not found["other/config-only"].has_weights
    assert cached_snapshot("SomeOrg/Tiny-Model") is not None  # case-insensitive


def test_local_snapshot_follows_refs_main(tmp_path, fake_cache, llama_cfg) -> None:
    snap = fake_cache(tmp_path / "hf-cache", "someorg/tiny-model", weights=True)
    newer = snap.parent / ("f" * 40)  # a newer partial snapshot that refs/main does not name
    newer.mkdir()
    (newer / "config.json").write_text(json.dumps(llama_cfg))
    os.utime(newer, (snap.stat().st_mtime + 100,) * 2)
    assert local_snapshot("someorg/tiny-model") == snap
    assert local_snapshot("SomeOrg/Tiny-Model") == snap  # case-insensitive


def test_local_snapshot_missing_or_partial(tmp_path, fake_cache) -> None:
    with pytest.raises(ModelSourceError) as err:
        local_snapshot("someorg/absent")
    assert "not in the Hugging Face cache" in str(err.value)
    assert "hf download someorg/absent" in str(err.value)
    fake_cache(tmp_path / "hf-cache", "other/config-only", weights=False)
    with pytest.raises(ModelSourceError, match="incomplete: .* no weights"):
        local_snapshot("other/config-only")
