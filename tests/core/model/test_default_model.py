from __future__ import annotations

import json

from spark_tui.core.model import resolve as models


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
    assert (
        models.resolve_model_path("meta-llama/Llama-3.1-8B-Instruct")
        == "meta-llama/Llama-3.1-8B-Instruct"
    )
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


# SmolLM2's pre-tokenizer: every digit on its own (Unicode digits too), then ByteLevel
# with the GPT-2 regex.  Pieces as the byte-level pre-tokenizer prints them.
SMOLLM2_PIECES = {
    "  42": ["ĠĠ", "4", "2"],
    "½ cup": ["Â½", "Ġcup"],
    "١٢٣": ["Ù¡", "Ù¢", "Ù£"],
    "12345": ["1", "2", "3", "4", "5"],
}
TOKENIZE_TEXTS = [
    *SMOLLM2_PIECES,
    "I have 3 apples and 12 pears.",
    "a\t\t1",
    "price: $1,299.99!!",
    "x²+y² = 2026",
    "ⅫⅣ ٣٤ 中文1314 😀 2",
    "  \n\n  x   ",
    "I'm sure they'll say \"naïve café\".",
    "<|im_start|>user\nWhat is 7*6?<|im_end|>\n<|im_start|>assistant\n42<|im_end|>",
]


def test_tokenizer_is_smollm2s(default_model_dir):
    from transformers import AutoTokenizer

    from spark_tui.core.export import gguf_vocab

    tok = AutoTokenizer.from_pretrained(default_model_dir)
    pre = tok.backend_tokenizer.pre_tokenizer
    for text, pieces in SMOLLM2_PIECES.items():
        assert [p for p, _ in pre.pre_tokenize_str(text)] == pieces, text
    assert tok.tokenize("  42") == ["ĠĠ", "4", "2"]
    assert tok.tokenize("12345") == ["1", "2", "3", "4", "5"]
    # Special tokens and flags as SmolLM2-135M-Instruct's tokenizer_config.json has them.
    assert (tok.bos_token, tok.eos_token, tok.pad_token, tok.unk_token) == (
        "<|im_start|>",
        "<|im_end|>",
        "<|im_end|>",
        "<|endoftext|>",
    )
    assert tok("a")["input_ids"] == tok("a", add_special_tokens=False)["input_ids"]  # no BOS/EOS
    assert tok.clean_up_tokenization_spaces is False
    assert tok.model_max_length == 8192
    assert len(tok) == 49152 and tok.convert_tokens_to_ids("<|im_start|>") == 1
    # llama.cpp's converter identifies the tokenizer by this hash: SmolLM's.
    assert gguf_vocab.pre_tokenizer_from_hash(tok) == "smollm"


def test_llama_cpp_tokenizes_like_the_rebuilt_tokenizer(default_model_dir):
    import pytest

    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(default_model_dir)
    llm = llama_cpp.Llama(
        model_path=str(models.bundled_gguf_path()), vocab_only=True, verbose=False
    )
    try:
        for text in TOKENIZE_TEXTS:
            ours = tok(text, add_special_tokens=False)["input_ids"]
            assert llm.tokenize(text.encode(), add_bos=False, special=True) == ours, text
            assert llm.tokenize(text.encode(), add_bos=True, special=True) == tok(text)["input_ids"]
            assert llm.detokenize(ours, special=True).decode() == tok.decode(ours), text
    finally:
        llm.close()


def test_pre_tokenizer_name_follows_llama_cpps_hash(default_model_dir, caplog):
    """The published SmolLM2 vocabulary is 'smollm' however its tokenizer.json is spelt
    (as llama.cpp's converter decides); without the tokenizer, the structure decides."""
    import json

    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer

    from spark_tui.core.export import gguf_vocab

    tj = json.loads((default_model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    tok = AutoTokenizer.from_pretrained(default_model_dir)
    assert gguf_vocab.detect_pre_tokenizer(tj) == "smollm"
    assert gguf_vocab.detect_pre_tokenizer(tj, tok) == "smollm"
    # A v1-style folder: SmolLM2's vocabulary behind a plain ByteLevel pre-tokenizer.
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    plain = dict(tj, pre_tokenizer=json.loads(tok.backend_tokenizer.to_str())["pre_tokenizer"])
    assert gguf_vocab.detect_pre_tokenizer(plain) == "gpt-2"
    assert gguf_vocab.detect_pre_tokenizer(plain, tok) == "smollm"
    assert "vocabulary is 'smollm'" in caplog.text
