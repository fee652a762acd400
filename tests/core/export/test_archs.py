"""Every catalogue architecture family through our GGUF writer, checked by llama.cpp.

For each tiny fixture (Gemma 2, Phi-3.5, Mistral, Llama 3.2): f16 and q8_0 are
written by `export_gguf` (q4_k_m by llama.cpp's quantizer from the f16), llama.cpp
loads each file, and its logits on the Hugging Face token ids of a few prompts are
compared with transformers' own.  f16 must agree on top-1 everywhere and stay within
REL_TOLERANCE; quantized files must clear MIN_TOP1.  The metadata tests pin the keys
llama.cpp reads for each architecture (without them it refuses the file or silently
computes something else).
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from spark_tui.core.export.common import UnsupportedModelError
from spark_tui.core.export.gguf_archs import longrope_attn_factor, other_routes
from spark_tui.core.export.gguf_meta import size_label
from spark_tui.core.export.gguf_writer import GGUFExport, export_gguf, plan_tensors
from spark_tui.core.export.verify import (
    DEFAULT_PROMPTS,
    MIN_TOP1,
    REL_TOLERANCE,
    LogitsCheck,
    compare_logits,
    load_llama,
)

pytestmark = pytest.mark.slow

# fixture -> GGUF arch llama.cpp must see
ARCHS = {
    "gemma2_dir": "gemma2",
    "phi3_dir": "phi3",
    "mistral_dir": "llama",
    "llama32_dir": "llama",
}
TYPES = ("f16", "q8_0", "q4_k_m")


@dataclass
class ArchCase:
    model_dir: Path
    arch: str
    exports: dict[str, GGUFExport] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    checks: dict[str, LogitsCheck] = field(default_factory=dict)


def _hf_logits(model_dir: Path) -> tuple[list[list[int]], list[np.ndarray]]:
    """transformers' float32 logits for the prompts (the model is freed before llama.cpp runs)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    ids = [list(tok(p, add_special_tokens=True)["input_ids"]) for p in DEFAULT_PROMPTS]
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    with torch.no_grad():
        logits = [model(torch.tensor([i])).logits[0].float().numpy() for i in ids]
    del model
    return ids, logits


def _llama_logits(path: Path, ids: list[list[int]]) -> list[np.ndarray]:
    llm = load_llama(path, n_ctx=256)
    try:
        out = []
        for i in ids:
            llm.reset()
            llm.eval(i)
            out.append(np.array(llm.scores[: len(i)], dtype=np.float32))
        return out
    finally:
        llm.close()


@pytest.fixture(scope="module", params=list(ARCHS))
def case(request, llama_cpp, tmp_path_factory) -> ArchCase:
    from spark_tui.core.export.quantize import quantize_gguf

    model_dir = request.getfixturevalue(request.param)
    name = request.param.removesuffix("_dir")
    c = ArchCase(model_dir=model_dir, arch=ARCHS[request.param])
    ids, hf = _hf_logits(model_dir)
    out = tmp_path_factory.mktemp(f"{name}-gguf")
    for t in ("f16", "q8_0"):
        c.exports[t] = export_gguf(model_dir, out / f"{name}-{t}.gguf", t, finetune="test-run")
        c.paths[t] = c.exports[t].path
    c.paths["q4_k_m"] = out / f"{name}-q4_k_m.gguf"
    quantize_gguf(c.paths["f16"], c.paths["q4_k_m"], "q4_k_m")
    for t in TYPES:
        pairs = list(zip(hf, _llama_logits(c.paths[t], ids), strict=True))
        c.checks[t] = compare_logits("llama.cpp", pairs, REL_TOLERANCE.get(t), MIN_TOP1.get(t, 0.0))
    return c


def _reader(path: Path):
    import gguf

    return gguf.GGUFReader(str(path))


def _fields(path: Path) -> dict:
    r = _reader(path)
    return {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.")}


def _tensors(path: Path) -> dict[str, str]:
    return {t.name: t.tensor_type.name for t in _reader(path).tensors}


# --------------------------------------------------------------------------- llama.cpp logits


def test_f16_matches_transformers(case):
    c = case.checks["f16"]
    assert case.exports["f16"].arch == case.arch
    assert c.top1_agreement == 1.0, c.line()
    assert c.max_abs_diff <= REL_TOLERANCE["f16"] * max(c.logit_scale, 1.0), c.line()
    assert c.passed, c.line()


@pytest.mark.parametrize("qtype", ["q8_0", "q4_k_m"])
def test_quantized_clear_the_floor(case, qtype):
    c = case.checks[qtype]
    assert c.top1_agreement >= MIN_TOP1[qtype], c.line()
    assert c.passed, c.line()


# --------------------------------------------------------------------------- metadata


def test_shared_keys(case):
    f = _fields(case.paths["f16"])
    cfg = json.loads((case.model_dir / "config.json").read_text())
    a = case.arch
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    assert f["general.architecture"] == a
    assert f[f"{a}.attention.key_length"] == head_dim
    assert f[f"{a}.attention.value_length"] == head_dim
    assert f[f"{a}.context_length"] == cfg["max_position_embeddings"]
    assert f[f"{a}.block_count"] == cfg["num_hidden_layers"]
    assert f[f"{a}.attention.head_count_kv"] == cfg["num_key_value_heads"]
    assert f["general.name"] and f["general.basename"]
    assert f["general.finetune"] == "test-run"
    exp = case.exports["f16"]
    assert f["general.size_label"] == exp.size_label == size_label(exp.n_params)
    assert exp.n_params == sum(int(np.prod(t.shape)) for t in _reader(case.paths["f16"]).tensors)


def test_gemma2_layout(gemma2_dir, tmp_path):
    out = export_gguf(gemma2_dir, tmp_path / "g.gguf", "f16")
    f, types = _fields(out.path), _tensors(out.path)
    cfg = json.loads((gemma2_dir / "config.json").read_text())
    assert f["gemma2.attn_logit_softcapping"] == pytest.approx(cfg["attn_logit_softcapping"])
    assert f["gemma2.final_logit_softcapping"] == pytest.approx(cfg["final_logit_softcapping"])
    assert f["gemma2.attention.sliding_window"] == cfg["sliding_window"]
    assert f["gemma2.attention.key_length"] == 128 != cfg["hidden_size"] // 4
    assert f["tokenizer.ggml.add_space_prefix"] is False  # Gemma's SentencePiece adds none
    assert "output.weight" not in types  # tied: llama.cpp reuses token_embd
    for n in ("post_attention_norm", "post_ffw_norm", "attn_norm", "ffn_norm"):
        assert types[f"blk.1.{n}.weight"] == "F32"
    # the (1 + w) norm lives in plan_tensors, so tensor verification sees it too
    plan = plan_tensors(gemma2_dir, "f16")
    p = plan.by_gguf_name()["blk.0.post_ffw_norm.weight"]
    raw = plan.src.load(p.hf_name)
    np.testing.assert_array_equal(p.source_data(plan.src), raw + 1.0)
    assert plan.by_gguf_name()["blk.0.attn_q.weight"].offset == 0.0


def test_phi3_layout(phi3_dir, tmp_path):
    out = export_gguf(phi3_dir, tmp_path / "p.gguf", "q8_0")
    f, types = _fields(out.path), _tensors(out.path)
    cfg = json.loads((phi3_dir / "config.json").read_text())
    rope = cfg.get("rope_scaling") or cfg["rope_parameters"]
    assert f["phi3.rope.scaling.original_context_length"] == 4096
    assert f["phi3.attention.sliding_window"] == cfg["sliding_window"]
    expected = math.sqrt(1 + math.log(131072 / 4096) / math.log(4096))
    assert f["phi3.rope.scaling.attn_factor"] == pytest.approx(expected, rel=1e-6)
    assert longrope_attn_factor(cfg) == pytest.approx(expected)
    assert "phi3.rope.scaling.type" not in f  # llama.cpp's converter writes none for longrope
    assert types["rope_factors_long.weight"] == types["rope_factors_short.weight"] == "F32"
    assert types["blk.0.attn_qkv.weight"] == "Q8_0" and "blk.0.attn_q.weight" not in types
    assert "blk.0.ffn_gate.weight" not in types  # gate_up_proj stays fused in ffn_up
    plan = plan_tensors(phi3_dir, "f16").by_gguf_name()
    assert plan["blk.0.attn_qkv.weight"].shape == (3 * 256, 256)
    assert plan["blk.0.ffn_up.weight"].shape == (2 * 512, 256)
    np.testing.assert_allclose(plan["rope_factors_long.weight"].data, rope["long_factor"])
    np.testing.assert_allclose(plan["rope_factors_short.weight"].data, rope["short_factor"])
    assert len(f["tokenizer.ggml.tokens"]) == cfg["vocab_size"] > 405  # padded vocabulary


def test_mistral_and_llama32_through_llama_path(mistral_dir, llama32_dir, tmp_path):
    m = export_gguf(mistral_dir, tmp_path / "m.gguf", "f16")
    assert m.arch == "llama" and m.hf_architecture == "MistralForCausalLM"
    assert m.tokenizer_model == "llama" and not m.tied_embeddings
    assert any("sliding window" in n for n in m.notes)
    fm = _fields(m.path)
    assert fm["llama.rope.freq_base"] == pytest.approx(1e6)
    types = _tensors(m.path)
    assert "output.weight" in types and "rope_freqs.weight" not in types
    t = export_gguf(llama32_dir, tmp_path / "l.gguf", "f16")
    assert t.tied_embeddings and t.rope_scaling == "llama3" and t.tokenizer_pre == "llama-bpe"
    types = _tensors(t.path)
    assert "output.weight" not in types and types["rope_freqs.weight"] == "F32"


# --------------------------------------------------------------------------- general.*


def test_size_label_like_llama_cpp():
    assert size_label(134_515_008) == "135M"
    assert size_label(1_235_814_400) == "1.2B"
    assert size_label(8_030_261_248) == "8.0B"


def test_general_metadata_from_model_card_and_caller(qwen2_dir, tmp_path):
    d = tmp_path / "Qwen2.5-0.5B-Instruct-ft"
    shutil.copytree(qwen2_dir, d)
    (d / "README.md").write_text(
        "---\nlicense: apache-2.0\nbase_model: Qwen/Qwen2.5-0.5B-Instruct\n"
        "tags:\n- chat\n---\n# A fine-tune\n",
        encoding="utf-8",
    )
    out = export_gguf(d, tmp_path / "a.gguf", "f16")
    f = _fields(out.path)
    assert f["general.license"] == "apache-2.0"
    assert f["general.base_model.count"] == 1
    assert f["general.base_model.0.organization"] == "Qwen"
    assert f["general.base_model.0.repo_url"] == "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct"
    assert f["general.basename"] == "Qwen2.5"
    assert out.general["general.license"] == "apache-2.0"

    out = export_gguf(
        d,
        tmp_path / "b.gguf",
        "f16",
        name="my-run",
        finetune="my-run",
        license="mit",
        base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
        basename="SmolLM2",
    )
    f = _fields(out.path)
    assert f["general.name"] == "my-run" and f["general.finetune"] == "my-run"
    assert f["general.license"] == "mit"  # the caller's value wins over the model card
    assert f["general.basename"] == "SmolLM2"
    assert f["general.base_model.0.name"] == "SmolLM2 135M Instruct"
    assert f["general.base_model.0.organization"] == "HuggingFaceTB"


def test_general_metadata_defaults(qwen2_dir, tmp_path):
    out = export_gguf(qwen2_dir, tmp_path / "c.gguf", "f16", base_model="Qwen/Qwen2.5-0.5B")
    f = _fields(out.path)
    assert f["general.basename"] == "Qwen2.5"  # from the base model when nothing else says
    assert f["general.size_label"] == size_label(out.n_params)
    assert "general.license" not in f  # no model card, no caller value: nothing invented


# --------------------------------------------------------------------------- refusals


def _variant(src: Path, dst: Path, **changes) -> Path:
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg.update(changes)
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def test_gemma2_query_scale_llama_cpp_cannot_do_is_refused_with_routes(gemma2_dir, tmp_path):
    d = _variant(gemma2_dir, tmp_path / "m", query_pre_attn_scalar=96)
    with pytest.raises(UnsupportedModelError) as exc:
        export_gguf(d, tmp_path / "x.gguf", "f16")
    msg = str(exc.value)
    assert "query_pre_attn_scalar" in msg and "--llama-cpp" in msg


def test_rope_scaling_the_arch_cannot_carry_is_refused(phi3_dir, tmp_path):
    cfg = json.loads((phi3_dir / "config.json").read_text())
    rope = dict(cfg.get("rope_parameters") or {}, rope_type="dynamic", type="dynamic")
    d = _variant(phi3_dir, tmp_path / "m", rope_parameters=rope, rope_scaling=None)
    with pytest.raises(UnsupportedModelError, match="dynamic"):
        plan_tensors(d)


def test_routes_name_ollama_import_where_it_exists():
    from spark_tui.core.export.modelfile import OLLAMA_SAFETENSORS_ARCHS

    for arch in OLLAMA_SAFETENSORS_ARCHS:
        assert "Ollama" in other_routes(arch)
    assert "--llama-cpp" in other_routes("SomethingElseForCausalLM")
