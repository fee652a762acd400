"""GGUF export: our writer + llama.cpp quantizer, verified by llama.cpp and transformers."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from spark_tui.core.export.common import UnsupportedModelError
from spark_tui.core.export.gguf_vocab import detect_pre_tokenizer
from spark_tui.core.export.gguf_writer import export_gguf, llama3_rope_factors
from spark_tui.core.export.verify import verify_gguf

pytestmark = pytest.mark.slow


def _reader(path):
    import gguf

    return gguf.GGUFReader(str(path))


def _field(reader, key):
    return reader.fields[key].contents()


def _tensor_types(reader):
    return {t.name: t.tensor_type.name for t in reader.tensors}


# --------------------------------------------------------------------------- Llama 3 style


def test_llama3_f16_matches_hf(llama3_export):
    rep = llama3_export.verifications["f16"]
    assert rep.tokenization_ok, rep.summary_lines()
    assert len(rep.tokenization) >= 4  # plain prompts + a chat-formatted one
    lc = rep.llama_logits
    assert lc.top1_agreement == 1.0, lc.line()
    assert lc.max_abs_diff <= lc.tolerance, lc.line()
    tc = rep.transformers_logits
    assert tc is not None and tc.passed and tc.top1_agreement == 1.0, tc.line()
    assert rep.passed


@pytest.mark.parametrize("qtype", ["q8_0", "q4_k_m"])
def test_llama3_quantized_load_tokenize_answer(llama3_export, qtype):
    rep = llama3_export.verifications[qtype]
    assert rep.tokenization_ok, rep.summary_lines()
    assert rep.llama_logits is not None and rep.llama_logits.passed, rep.llama_logits.line()
    assert rep.gguf_answer is not None
    assert rep.passed


def test_llama3_file_layout(llama3_export, llama3_dir):
    f16 = _reader(llama3_export.outputs["f16"])
    assert _field(f16, "general.architecture") == "llama"
    assert _field(f16, "tokenizer.ggml.model") == "gpt2"
    assert _field(f16, "tokenizer.ggml.pre") == "llama-bpe"
    assert _field(f16, "tokenizer.ggml.add_bos_token") is True
    assert "llama.rope.scaling.type" not in f16.fields  # llama3 scaling lives in rope_freqs
    # written always, as llama.cpp's converter does (head_dim here is hidden / heads)
    assert _field(f16, "llama.attention.key_length") == 64
    assert _field(f16, "llama.attention.value_length") == 64
    assert _field(f16, "general.size_label") == "1.6M"  # 2 x 768 x 256 + 2 layers
    assert _field(f16, "general.name") and _field(f16, "general.basename")
    types = _tensor_types(f16)
    assert types["rope_freqs.weight"] == "F32"
    assert types["output.weight"] == "F16"  # untied model keeps its own head
    assert types["blk.0.attn_norm.weight"] == "F32"
    assert types["blk.0.attn_q.weight"] == "F16"
    cfg = json.loads((llama3_dir / "config.json").read_text())
    assert _field(f16, "llama.rope.freq_base") == pytest.approx(500000.0)
    assert len(f16.fields["tokenizer.ggml.tokens"].data) == cfg["vocab_size"]
    # K-quants took their real 256-wide path (no fallback for these rows)
    q4 = _tensor_types(_reader(llama3_export.outputs["q4_k_m"]))
    assert "Q4_K" in q4.values()
    assert q4["blk.0.ffn_gate.weight"] in ("Q4_K", "Q5_K", "Q6_K")
    q8 = _tensor_types(_reader(llama3_export.outputs["q8_0"]))
    assert q8["blk.0.attn_q.weight"] == "Q8_0" and q8["blk.0.ffn_norm.weight"] == "F32"


def test_llama3_rope_factors_match_transformers(llama3_dir):
    import torch
    from transformers import AutoConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    cfg_json = json.loads((llama3_dir / "config.json").read_text())
    config = AutoConfig.from_pretrained(llama3_dir)
    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](config, torch.device("cpu"))
    head_dim = config.hidden_size // config.num_attention_heads
    base = 1.0 / (500000.0 ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    expected = (base / scaled.double()).numpy()
    np.testing.assert_allclose(llama3_rope_factors(cfg_json), expected, rtol=1e-5)


# --------------------------------------------------------------------------- Qwen2


def test_qwen2_f16_biases_and_tied_head(qwen2_dir, llama_cpp, tmp_path):
    out = export_gguf(qwen2_dir, tmp_path / "qwen2-f16.gguf", "f16")
    assert out.arch == "qwen2" and out.tokenizer_pre == "qwen2" and out.tied_embeddings
    r = _reader(out.path)
    types = _tensor_types(r)
    assert "output.weight" not in types
    assert types["blk.0.attn_q.bias"] == "F32" and types["blk.1.attn_v.bias"] == "F32"
    assert _field(r, "qwen2.attention.key_length") == _field(r, "qwen2.attention.value_length")
    rep = verify_gguf(out.path, qwen2_dir, gguf_type="f16", hf_answer=False, max_new_tokens=4)
    assert rep.tokenization_ok, rep.summary_lines()
    assert rep.llama_logits.passed and rep.llama_logits.top1_agreement == 1.0, rep.summary_lines()
    assert rep.transformers_logits is not None and rep.transformers_logits.passed


def test_bf16_direct(qwen2_dir, llama_cpp, tmp_path):
    out = export_gguf(qwen2_dir, tmp_path / "qwen2-bf16.gguf", "bf16")
    types = _tensor_types(_reader(out.path))
    assert types["blk.0.attn_q.weight"] == "BF16" and types["blk.0.attn_q.bias"] == "F32"
    rep = verify_gguf(
        out.path,
        qwen2_dir,
        gguf_type="bf16",
        hf_answer=False,
        max_new_tokens=2,
        logit_prompts=1,
        check_transformers=False,
    )
    assert rep.tokenization_ok and rep.llama_logits.passed, rep.summary_lines()


# --------------------------------------------------------------------------- SentencePiece


def test_sentencepiece_model_exports_and_tokenizes_alike(spm_dir, llama_cpp, tmp_path):
    out = export_gguf(spm_dir, tmp_path / "spm-f16.gguf", "f16")
    assert out.tokenizer_model == "llama"
    r = _reader(out.path)
    assert len(r.fields["tokenizer.ggml.scores"].data) == out.n_vocab
    rep = verify_gguf(
        out.path,
        spm_dir,
        gguf_type="f16",
        hf_answer=False,
        max_new_tokens=4,
        check_transformers=False,
    )
    assert rep.tokenization_ok, rep.summary_lines()
    assert rep.llama_logits.passed and rep.llama_logits.top1_agreement == 1.0


def test_sentencepiece_from_tokenizer_json_only(spm_dir, llama_cpp, tmp_path):
    """transformers 5 saves no tokenizer.model: scores are rebuilt from the BPE merges."""
    d = tmp_path / "model"
    shutil.copytree(spm_dir, d)
    (d / "tokenizer.model").unlink()
    out = export_gguf(d, tmp_path / "spm-json-f16.gguf", "f16")
    assert out.tokenizer_model == "llama"
    rep = verify_gguf(
        out.path, d, gguf_type="f16", hf_answer=False, max_new_tokens=4, check_transformers=False
    )
    assert rep.tokenization_ok, rep.summary_lines()


def test_sentencepiece_non_legacy_difference_is_explained(spm_dir, llama_cpp, tmp_path):
    """HF legacy=False adds no space after special tokens; llama.cpp always does: say so."""
    from tokenizer_files import set_tokenizer_config

    d = tmp_path / "model"
    shutil.copytree(spm_dir, d)
    set_tokenizer_config(d, legacy=False)
    out = export_gguf(d, tmp_path / "spm-nl-f16.gguf", "f16")
    rep = verify_gguf(
        out.path, d, gguf_type="f16", hf_answer=False, max_new_tokens=2, check_transformers=False
    )
    bad = [t for t in rep.tokenization if not t.match]
    if not bad:
        pytest.skip("this transformers version tokenizes like llama.cpp here")
    assert all(t.explain() for t in bad)
    assert any("legacy" in line for line in rep.summary_lines())


# --------------------------------------------------------------------------- default model


def test_default_model_exports_verified(default_export):
    assert set(default_export.outputs) == {"f16", "q8_0", "q4_k_m"}
    f16 = default_export.verifications["f16"]
    assert f16.tokenization_ok, f16.summary_lines()
    assert f16.llama_logits.passed, f16.llama_logits.line()
    # near-tied positions aside (see DESIGN.md §4), the top-1 token agrees everywhere
    assert f16.llama_logits.decisive_top1_agreement == 1.0
    assert f16.llama_logits.top1_agreement == 1.0, f16.llama_logits.line()
    assert f16.transformers_logits is not None and f16.transformers_logits.passed
    for q in ("q8_0", "q4_k_m"):
        rep = default_export.verifications[q]
        assert rep.tokenization_ok and rep.passed, rep.summary_lines()
        assert rep.gguf_answer, rep.summary_lines()
    r = _reader(default_export.outputs["f16"])
    assert "output.weight" not in _tensor_types(r)  # tied embeddings


# --------------------------------------------------------------------------- errors


def test_unsupported_architecture_is_named(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(UnsupportedModelError) as exc:
        export_gguf(tmp_path, tmp_path / "x.gguf", "f16")
    msg = str(exc.value)
    assert "GPT2LMHeadModel" in msg and "LlamaForCausalLM" in msg and "Qwen2ForCausalLM" in msg


def test_unknown_pre_tokenizer_is_refused():
    tj = {"pre_tokenizer": {"type": "Whitespace"}}
    with pytest.raises(UnsupportedModelError, match="pre-tokenizer"):
        detect_pre_tokenizer(tj)


def test_failed_export_leaves_nothing_under_final_name(qwen2_dir, tmp_path, monkeypatch):
    from spark_tui.core.export import gguf_writer

    calls = {"n": 0}
    real = gguf_writer._encode

    def boom(*a, **k):
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError("disk full")
        return real(*a, **k)

    monkeypatch.setattr(gguf_writer, "_encode", boom)
    final = tmp_path / "out" / "m-f16.gguf"
    with pytest.raises(OSError):
        export_gguf(qwen2_dir, final, "f16")
    assert not final.exists()
    assert list(final.parent.iterdir()) == []  # the temp file is gone too
