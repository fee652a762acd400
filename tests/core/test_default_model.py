from __future__ import annotations

import json

from spark_tui.core import models


def test_default_model_is_a_plain_hf_folder(default_model_dir):
    assert (default_model_dir / "model.safetensors").exists()
    assert (default_model_dir / "tokenizer.json").exists()
    cfg = json.loads((default_model_dir / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"]
    assert "quantization_config" not in cfg
    assert cfg["num_hidden_layers"] == 30 and cfg["hidden_size"] == 576
    assert models.default_model_ready()
    # Second call is a cache hit returning the same folder.
    assert models.ensure_default_model() == default_model_dir


def test_default_model_trains_and_answers(default_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(default_model_dir)
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    model = AutoModelForCausalLM.from_pretrained(default_model_dir)
    assert not getattr(model, "is_quantized", False)
    enc = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        logits = model(**enc).logits[0, -1]
    top = [tok.decode(int(i)) for i in torch.topk(logits, 5).indices]
    # The model's top-2 are nearly tied ("The" vs "L", DESIGN.md §4): check the set.
    assert "The" in top
    # A real (trainable) model: gradients flow.
    out = model(**enc, labels=enc["input_ids"])
    out.loss.backward()
    assert model.model.embed_tokens.weight.grad is not None


def test_resolve_model_path(tmp_path, default_model_dir):
    import pytest

    assert models.resolve_model_path("default") == str(default_model_dir)
    assert models.resolve_model_path("meta-llama/Llama-3.1-8B-Instruct") == "meta-llama/Llama-3.1-8B-Instruct"
    with pytest.raises(models.ModelError, match="config.json"):
        models.resolve_model_path(str(tmp_path))
    with pytest.raises(models.ModelError, match="does not exist"):
        models.resolve_model_path("./nope")


def test_conversion_is_atomic_when_interrupted(tmp_path, monkeypatch):
    import pytest

    monkeypatch.setenv("SPARK_TUI_CACHE", str(tmp_path / "cache"))

    def boom(out, report):
        (out / "partial.safetensors").write_text("half")
        raise RuntimeError("killed mid-way")

    monkeypatch.setattr(models, "_convert_default_model", boom)
    with pytest.raises(RuntimeError):
        models.ensure_default_model()
    final = models.default_model_dir()
    assert not final.exists()
    assert list(final.parent.iterdir()) == []  # the temp folder was cleaned up
