"""Architecture shapes read from a Hugging Face config.json (plain and multimodal)."""

from __future__ import annotations

import pytest

from spark_tui.core.model import catalog
from spark_tui.core.model.architecture import Architecture


def test_from_config_reads_hf_config_json() -> None:
    cfg = {
        "model_type": "llama",
        "num_hidden_layers": 16,
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "tie_word_embeddings": True,
        "max_position_embeddings": 131072,
        "head_dim": 64,
    }
    a = Architecture.from_config(cfg)
    assert a == catalog.get("meta-llama/Llama-3.2-1B-Instruct").arch
    nested = Architecture.from_config({"model_type": "x", "text_config": cfg})
    assert nested.num_layers == 16
    with pytest.raises(ValueError, match="vocab_size"):
        Architecture.from_config({k: v for k, v in cfg.items() if k != "vocab_size"})
