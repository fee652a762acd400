"""The prepared dataset on disk: written where asked, never over the source it came from."""

from __future__ import annotations

import pytest

from spark_tui.core.data import DataError, prepare_dataset


def test_refuses_to_write_over_the_source(tokenizer, tmp_path, make_cfg):
    from datasets import Dataset

    Dataset.from_list([{"instruction": "Q", "output": "A"}] * 3).save_to_disk(str(tmp_path / "src"))
    with pytest.raises(DataError, match="refusing to write the prepared data over the source"):
        prepare_dataset(make_cfg(tmp_path / "src"), tokenizer, out_dir=tmp_path / "src")
