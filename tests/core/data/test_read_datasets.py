"""save_to_disk folders and Hub ids load; offline, the error says so instead of hanging."""

from __future__ import annotations

import pytest

from spark_tui.core.data import DataError, load_source


def test_save_to_disk_folders(tmp_path, two_rows):
    from datasets import Dataset, DatasetDict

    Dataset.from_list(two_rows).save_to_disk(str(tmp_path / "one"))
    assert load_source(tmp_path / "one").rows == two_rows
    DatasetDict(
        {"train": Dataset.from_list(two_rows), "test": Dataset.from_list(two_rows[:1])}
    ).save_to_disk(str(tmp_path / "dict"))
    assert load_source(tmp_path / "dict").rows == two_rows
    assert load_source(tmp_path / "dict", split="test").rows == two_rows[:1]


def test_folder_that_is_not_a_dataset(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="not a `datasets` save_to_disk folder"):
        load_source(tmp_path)


def test_hub_id_offline_says_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="offline"):
        load_source("someone/some-dataset")


def test_hub_probe_times_out_quickly(monkeypatch):
    import time

    from spark_tui.core.data import hub_offline

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: refused at once
    t = time.perf_counter()
    assert hub_offline() is True
    assert time.perf_counter() - t < 5


def test_hub_id_not_reachable_says_offline(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(DataError, match="offline .*cannot be reached.*HF_HUB_OFFLINE=1"):
        load_source("someone/some-dataset")


def test_hub_dataset_from_the_local_cache_when_offline(monkeypatch, tmp_path, two_rows):
    """Offline with HF_HUB_OFFLINE set, a dataset already cached still loads (here: a stub)."""
    import datasets

    calls = {}

    def fake_load_dataset(repo, subset, split):
        calls["args"] = (repo, subset, split)
        return datasets.Dataset.from_list(two_rows)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    src = load_source("someone/cached", subset="en", split="test")
    assert src.rows == two_rows and src.kind == "hub"
    assert calls["args"] == ("someone/cached", "en", "test")
