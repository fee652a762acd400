"""The streaming merge equals PEFT's merge_and_unload, tensor by tensor.

Tolerances: fp32 outputs within 1e-5 absolute of merge_and_unload's tensors (both
compute W + s·B·A in float32; only the order of rounding differs); 16-bit outputs
within one ulp of the reference value (both round the float32 result once, PEFT's
QLoRA reference rounds the base to bf16 first).  Every output tensor is compared,
and the set of names must equal the base checkpoint's (tied heads are not written).
"""

from __future__ import annotations

import json
from pathlib import Path

import merge_fixtures as mf
import pytest
import torch

from spark_tui.core.export.merge import merge_adapter

pytestmark = pytest.mark.slow

FP32_ATOL = 1e-5


def ulp(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The spacing of `dtype` (bf16: 8 significant bits, fp16: 11) at each value of `x`."""
    bits = 8 if dtype == torch.bfloat16 else 11
    _, exp = torch.frexp(x.float())
    return torch.ldexp(torch.ones_like(x, dtype=torch.float32), exp - bits)


def assert_same(
    out: Path,
    base: Path,
    ref: dict[str, torch.Tensor],
    *,
    ulps: float | None = None,
    base_rounded: bool = False,
) -> float:
    """Streamed output vs the PEFT reference; returns the largest difference seen.

    `ulps`: allowed difference in ulps of the reference value; `base_rounded`: the
    reference rounded the stored base to 16-bit before adding (QLoRA reload), so one ulp
    of the base value is allowed on top.
    """
    got = mf.read_folder(out)
    stored = mf.read_folder(base)
    assert set(got) == set(stored), "output tensor names differ from the base's"
    worst = 0.0
    for name, t in got.items():
        want = ref[name]
        assert t.shape == want.shape and t.dtype == want.dtype, name
        if ulps is None:
            d = float((t.float() - want.float()).abs().max())
            assert d <= FP32_ATOL, f"{name}: |Δ| {d:.3g} > {FP32_ATOL}"
        else:
            unit = ulp(want, want.dtype)
            if base_rounded and stored[name].shape == want.shape:
                unit = unit + ulp(stored[name], want.dtype)
            d = float(((t.float() - want.float()).abs() / unit).max())
            assert d <= ulps, f"{name}: {d} ulp"
        worst = max(worst, d)
    return worst


@pytest.fixture(scope="module")
def tied_llama_dir(llama3_dir, tmp_path_factory):
    return mf.derived_model(llama3_dir, tmp_path_factory.mktemp("tied") / "model", tie=True)


@pytest.fixture(scope="module")
def bf16_llama_dir(llama3_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bf16") / "model"
    return mf.derived_model(llama3_dir, out, dtype=torch.bfloat16)


LLAMA_CASES = {
    "lora": {},
    "rslora": {"use_rslora": True, "lora_alpha": 4},
    "dora": {"use_dora": True},
    "patterns": {"rank_pattern": {"q_proj": 4, "down_proj": 12}, "alpha_pattern": {"v_proj": 64}},
    "modules_to_save": {"modules_to_save": ["lm_head"]},
}


@pytest.mark.parametrize("case", list(LLAMA_CASES))
def test_llama_fp32_equals_merge_and_unload(llama3_dir, tmp_path, case):
    adapter = mf.make_adapter(llama3_dir, tmp_path / "a", **LLAMA_CASES[case])
    out = tmp_path / "merged"
    res = merge_adapter(
        adapter, out, base_model=str(llama3_dir), check=False, max_shard_bytes=2**21
    )
    assert res.path == "streaming", res.notes
    assert res.tensors_merged == 14 and res.shards >= 3
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) == res.shards
    assert index["metadata"]["total_size"] == sum(
        t.numel() * t.element_size() for t in mf.read_folder(out).values()
    )
    worst = assert_same(out, llama3_dir, mf.reference_merge(llama3_dir, adapter))
    print(f"{case}: max |Δ| vs merge_and_unload {worst:.2e}")


@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
def test_qwen2_biases_tied(qwen2_dir, tmp_path, dora):
    adapter = mf.make_adapter(qwen2_dir, tmp_path / "a", use_dora=dora)
    out = tmp_path / "merged"
    res = merge_adapter(adapter, out, base_model=str(qwen2_dir), check=False)
    assert res.path == "streaming", res.notes
    assert "lm_head.weight" not in mf.read_folder(out)
    assert (out / "model.safetensors").exists() and not (
        out / "model.safetensors.index.json"
    ).exists()
    assert_same(out, qwen2_dir, mf.reference_merge(qwen2_dir, adapter))


def test_tied_llama_with_trainable_tokens(tied_llama_dir, tmp_path):
    adapter = mf.make_adapter(tied_llama_dir, tmp_path / "a", trainable_token_indices=[5, 9, 700])
    out = tmp_path / "merged"
    res = merge_adapter(adapter, out, base_model=str(tied_llama_dir), check=False)
    assert res.path == "streaming", res.notes
    ref = mf.reference_merge(tied_llama_dir, adapter)
    assert_same(out, tied_llama_dir, ref)
    base_emb = mf.read_folder(tied_llama_dir)["model.embed_tokens.weight"]
    changed = (mf.read_folder(out)["model.embed_tokens.weight"] != base_emb).any(dim=1)
    assert changed.nonzero().flatten().tolist() == [5, 9, 700]
    assert json.loads((out / "config.json").read_text())["tie_word_embeddings"] is True


@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
def test_bf16_base_within_one_ulp(bf16_llama_dir, tmp_path, dora):
    adapter = mf.make_adapter(bf16_llama_dir, tmp_path / "a", dtype=torch.bfloat16, use_dora=dora)
    out = tmp_path / "merged"
    res = merge_adapter(adapter, out, base_model=str(bf16_llama_dir), check=False)
    assert res.path == "streaming" and res.dtype == "bfloat16"
    ref = mf.reference_merge(bf16_llama_dir, adapter, torch.bfloat16)
    worst = assert_same(out, bf16_llama_dir, ref, ulps=1.0)
    print(f"bf16 {'dora' if dora else 'lora'}: max {worst} ulp vs merge_and_unload")


def test_qlora_adapter_merges_into_stored_weights(llama3_dir, tmp_path):
    adapter = mf.make_adapter(llama3_dir, tmp_path / "a")
    out = tmp_path / "merged"
    res = merge_adapter(adapter, out, base_model=str(llama3_dir), qlora=True, check=False)
    assert res.path == "streaming" and res.dtype == "bfloat16"
    assert any("16-bit" in n and "4-bit" in n for n in res.notes), res.notes
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["dtype"] == "bfloat16" and "quantization_config" not in cfg
    # the reference rounds the base to bf16 before adding; we round once
    ref = mf.reference_merge(llama3_dir, adapter, torch.bfloat16)
    worst = assert_same(out, llama3_dir, ref, ulps=1.0, base_rounded=True)
    print(f"qlora: max {worst:.2f} x (ulp(out) + ulp(base)) vs merge_and_unload on bf16")


def test_fan_in_fan_out_gpt2(llama3_dir, tmp_path):
    base = mf.gpt2_model(tmp_path / "gpt2", llama3_dir, vocab=768)
    targets = ["c_attn", "c_proj", "c_fc"]
    for dora in (False, True):
        adapter = mf.make_adapter(
            base, tmp_path / f"a{dora}", target_modules=targets, fan_in_fan_out=True, use_dora=dora
        )
        out = tmp_path / f"merged{dora}"
        res = merge_adapter(adapter, out, base_model=str(base), check=False)
        assert res.path == "streaming" and res.tensors_merged == 8, res.notes
        assert_same(out, base, mf.reference_merge(base, adapter))


def test_grown_vocabulary(llama3_dir, tmp_path):
    adapter = mf.make_adapter(llama3_dir, tmp_path / "a", grow_tokens=40)
    assert (adapter / "tokenizer.json").exists()
    out = tmp_path / "merged"
    res = merge_adapter(adapter, out, base_model=str(llama3_dir), check=True)
    assert res.path == "streaming", res.notes
    assert res.vocab_size == 808 and res.checked and res.passed, res.summary_lines()
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 808
    got = mf.read_folder(out)
    assert (
        got["model.embed_tokens.weight"].shape[0] == 808 and got["lm_head.weight"].shape[0] == 808
    )
    ref = mf.reference_merge(llama3_dir, adapter)
    assert max(float((got[k] - ref[k]).abs().max()) for k in got) <= FP32_ATOL


def test_merged_folder_loads_and_matches_peft_logits(llama3_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = mf.make_adapter(llama3_dir, tmp_path / "a", use_dora=True)
    out = tmp_path / "merged"
    res = merge_adapter(adapter, out, base_model=str(llama3_dir), max_shard_bytes=2**21)
    assert res.path == "streaming" and res.checked and res.passed, res.summary_lines()
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "generation_config.json", "tokenizer.json", "merge_report.json"} <= names
    report = json.loads((out / "merge_report.json").read_text())
    assert report["path"] == "streaming" and report["shards"] == res.shards
    tok = AutoTokenizer.from_pretrained(out)
    assert "<|start_header_id|>" in tok.chat_template
    ids = torch.tensor([tok("Fine-tuning small language models is fun.")["input_ids"]])
    base = AutoModelForCausalLM.from_pretrained(llama3_dir, dtype=torch.float32)
    with torch.no_grad():
        want = PeftModel.from_pretrained(base, adapter).eval()(ids).logits
        got = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()(ids).logits
    scale = float(want.abs().max())
    diff = float((want - got).abs().max())
    print(
        f"logits: max |Δ| {diff:.2e} (max |logit| {scale:.1f}); merge check {res.max_abs_diff:.2e}"
    )
    assert diff <= 1e-4 * scale


def test_memory_stays_at_shard_size(llama3_dir, tmp_path):
    """A 260 MB model in 16 MB shards merges with a peak far below the model's size."""
    import subprocess
    import sys

    hidden, inter, layers, shard = 512, 1536, 20, 16 * 2**20
    base = mf.write_big_model(
        tmp_path / "base", llama3_dir, hidden=hidden, intermediate=inter, layers=layers,
        vocab=768, shard_bytes=shard,
    )  # fmt: skip
    adapter = mf.write_random_adapter(
        tmp_path / "adapter", base, layers=layers, hidden=hidden, inter=inter, r=8
    )
    total = sum(p.stat().st_size for p in base.glob("*.safetensors"))
    largest = max(p.stat().st_size for p in base.glob("*.safetensors"))
    adapter_bytes = (adapter / "adapter_model.safetensors").stat().st_size
    # Baseline: the resident set after the imports (VmRSS).  Peak: VmHWM, the
    # high-water mark, reset to the baseline just before the merge (/proc/self/clear_refs);
    # ru_maxrss is printed beside it: it also holds the imports' own transient peak.
    code = (
        "import gc, resource, sys, torch, transformers, peft, safetensors\n"
        "from spark_tui.core.export import merge\n"
        "def kb(f):\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith(f + ':'): return int(line.split()[1])\n"
        "gc.collect()\n"
        "base = kb('VmRSS')\n"
        "try:\n"
        "    open('/proc/self/clear_refs', 'w').write('5')\n"
        "except OSError:\n"
        "    pass  # no reset: VmHWM then includes the imports (a looser upper bound)\n"
        "r = merge.merge_adapter(sys.argv[1], sys.argv[2], base_model=sys.argv[3],"
        f" check=False, max_shard_bytes={shard})\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(base, peak, kb('VmHWM'), r.path, r.shards)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(adapter), str(tmp_path / "out"), str(base)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    base_kb, maxrss_kb, hwm_kb, path, shards = proc.stdout.split()[-5:]
    grown = (int(hwm_kb) - int(base_kb)) * 1024
    bound = 2 * largest + shard + adapter_bytes + 64 * 2**20
    print(
        f"model {total / 2**20:.0f} MB in {len(list(base.glob('*.safetensors')))} shards "
        f"(largest {largest / 2**20:.1f} MB), adapter {adapter_bytes / 2**20:.1f} MB: "
        f"peak RSS above imports {grown / 2**20:.1f} MB (VmHWM), "
        f"{(int(maxrss_kb) - int(base_kb)) / 1024:.1f} MB (ru_maxrss); bound {bound / 2**20:.0f} MB"
    )
    assert path == "streaming" and int(shards) >= 4
    # spot-check one weight against W + (alpha / r) * B @ A computed here
    from safetensors.torch import load_file

    from spark_tui.core.export.tensor_source import TensorSource

    name = "model.layers.3.mlp.down_proj.weight"
    lora = load_file(adapter / "adapter_model.safetensors")
    key = "base_model.model." + name[: -len(".weight")]
    want = (
        TensorSource(base).load_torch(name)
        + 2.0 * lora[key + ".lora_B.weight"] @ lora[key + ".lora_A.weight"]
    )
    got = TensorSource(tmp_path / "out").load_torch(name)
    assert float((got - want).abs().max()) <= FP32_ATOL
    assert total > 1.8 * bound  # a whole-model load could not pass
    assert grown < bound
