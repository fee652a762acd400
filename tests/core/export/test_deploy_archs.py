"""Every catalogue architecture through the deploy step: trained adapter -> merge -> GGUF.

For each tiny fixture model (Llama 3, Llama 2 / SentencePiece, Qwen2, Gemma 2, Phi-3.5,
Mistral, Llama 3.2; plus DoRA on Llama 3):

1. a LoRA adapter is really trained: PEFT on the fp32 model, all linear layers, r=8,
   the standard init (B = 0), two AdamW steps at lr 1e-2 on short texts (labels =
   input ids), so every B is non-zero;
2. the streaming merge (method="streaming": a fallback to PEFT raises instead of passing
   silently) writes >= 2 shards, and every tensor equals PEFT's merge_and_unload of the
   same adapter within 1e-5 absolute (fp32; test_stream_merge.assert_same);
3. the merged folder (tokenizer copied from the base) is exported to f16 and q8_0 and
   each file verified: llama.cpp loads it and its logits are compared with
   transformers', the tensor check passes, the report passes; f16 agrees on the top-1
   token at every position whose HF top-2 margin exceeds the f16 tolerance (at every
   position when there is no such near-tie), q8_0 clears its floor (verify.MIN_TOP1).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import merge_fixtures as mf
import pytest
import torch
from test_stream_merge import FP32_ATOL, assert_same

from spark_tui.core.export.merge import merge_adapter
from spark_tui.core.export.pipeline import export_model
from spark_tui.core.export.verify import MIN_TOP1

pytestmark = pytest.mark.slow

TRAIN_TEXTS = (
    "What is the capital of France? Paris is the capital of France.",
    "LoRA adds low-rank matrices to frozen weights.",
)
SEQ_LEN = 16
SHARD_BYTES = 2**20  # 1 MiB: every fixture model (1.5-7 MB in fp32) needs >= 2 shards

CASES = [
    pytest.param("llama3_dir", False, id="llama3"),
    pytest.param("llama3_dir", True, id="llama3-dora"),
    pytest.param("spm_dir", False, id="llama2-spm"),
    pytest.param("qwen2_dir", False, id="qwen2"),
    pytest.param("gemma2_dir", False, id="gemma2"),
    pytest.param("phi3_dir", False, id="phi3"),
    pytest.param("mistral_dir", False, id="mistral"),
    pytest.param("llama32_dir", False, id="llama32"),
]


def train_adapter(base_dir: Path, out: Path, *, use_dora: bool = False, steps: int = 2) -> Path:
    """A LoRA (or DoRA) adapter after `steps` real AdamW steps on TRAIN_TEXTS."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(11)
    tok = AutoTokenizer.from_pretrained(str(base_dir))
    base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    cfg = LoraConfig(
        task_type="CAUSAL_LM",
        r=8,
        lora_alpha=16,
        target_modules="all-linear",
        init_lora_weights=True,
        use_dora=use_dora,
    )
    model = get_peft_model(base, cfg)
    model.train()
    batch = [
        torch.tensor([tok(t, truncation=True, max_length=SEQ_LEN)["input_ids"]])
        for t in TRAIN_TEXTS
    ]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        loss = sum(model(input_ids=ids, labels=ids).loss for ids in batch)
        loss.backward()
        opt.step()
    model.save_pretrained(str(out))
    return out


def _adapter_tensors(adapter: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(adapter / "adapter_model.safetensors"))


@pytest.mark.parametrize(("fixture", "dora"), CASES)
def test_trained_adapter_merges_exports_and_verifies(request, llama_cpp, tmp_path, fixture, dora):
    start = time.monotonic()
    base_dir: Path = request.getfixturevalue(fixture)

    # 1. a really trained adapter: every B moved off its zero init
    adapter = train_adapter(base_dir, tmp_path / "adapter", use_dora=dora)
    assert not (adapter / "tokenizer_config.json").exists()
    lora = _adapter_tensors(adapter)
    b_keys = [k for k in lora if "lora_B" in k]
    assert b_keys, sorted(lora)[:10]
    zero_b = [k for k in b_keys if not lora[k].abs().max() > 0]
    assert not zero_b, f"B still zero after training: {zero_b[:5]}"
    if dora:
        assert any("lora_magnitude_vector" in k for k in lora), sorted(lora)[:10]
    acfg = json.loads((adapter / "adapter_config.json").read_text())
    assert acfg["use_dora"] is dora and acfg["r"] == 8

    # 2. streaming merge == PEFT merge_and_unload, tensor by tensor (fp32, FP32_ATOL abs)
    merged = tmp_path / "merged"
    res = merge_adapter(
        adapter,
        merged,
        base_model=str(base_dir),
        check=False,
        method="streaming",
        max_shard_bytes=SHARD_BYTES,
    )
    assert res.path == "streaming", res.summary_lines()
    assert res.dtype == "float32" and res.dora is dora, res.summary_lines()
    assert res.tensors_merged == len(b_keys), (res.tensors_merged, len(b_keys))
    assert res.shards >= 2, res.summary_lines()
    index = json.loads((merged / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) == res.shards
    merge_diff = assert_same(merged, base_dir, mf.reference_merge(base_dir, adapter))
    assert merge_diff <= FP32_ATOL
    got, stored = mf.read_folder(merged), mf.read_folder(base_dir)
    moved = max(float((got[k] - stored[k]).abs().max()) for k in got)
    assert moved > 1e-3, f"the merge left the weights where they were (max |ΔW| {moved:.2e})"
    # the tokenizer came from the base (the adapter folder has none)
    assert (merged / "tokenizer.json").is_file() and (merged / "tokenizer_config.json").is_file()
    if (base_dir / "tokenizer.model").is_file():
        assert (merged / "tokenizer.model").read_bytes() == (
            base_dir / "tokenizer.model"
        ).read_bytes()
    merge_s = time.monotonic() - start

    # 3. GGUF f16 + q8_0, each loaded by llama.cpp and verified against transformers
    out = tmp_path / "gguf"
    outcome = export_model(
        merged, out, ["f16", "q8_0"], verify=True, logits=True, hf_answer=False, max_new_tokens=8
    )
    numbers = {}
    for t in ("f16", "q8_0"):
        path = outcome.outputs[t]
        rep = outcome.verifications[t]
        why = "\n".join([f"{fixture} {t}:", *rep.summary_lines(), *outcome.notes])
        assert path.is_file() and path.stat().st_size > 0, why
        assert (out / f"verify-{t}.json").is_file(), why
        assert rep.llama_logits is not None, why  # llama.cpp loaded the file and ran it
        assert rep.logits_skipped is None, why
        assert rep.tensors is not None and rep.tensors_ok, why
        assert rep.tokenization_ok, why
        assert rep.llama_logits.passed and rep.logits_ok, why
        assert rep.passed, why
        numbers[t] = rep.llama_logits
    f16 = numbers["f16"]
    why = "\n".join(outcome.verifications["f16"].summary_lines())
    # top-1 agrees wherever HF's top two are further apart than the f16 tolerance; a trained
    # model may have near-ties (margin below the tolerance) where f16 rounding can flip the
    # winner, so 100 % over all positions is demanded only when there are none.
    assert f16.decisive_top1_agreement == 1.0, why
    if f16.decisive_positions == f16.n_positions:
        assert f16.top1_agreement == 1.0, why
    assert f16.max_abs_diff <= f16.tolerance, why
    assert numbers["q8_0"].top1_agreement >= MIN_TOP1["q8_0"], why

    total = time.monotonic() - start
    print(
        f"\n{request.node.callspec.id}: merge max |Δ| {merge_diff:.2e} ({res.shards} shards, "
        f"{res.tensors_merged} weights, max |ΔW| {moved:.3g}), f16 top-1 {f16.top1_agreement:.1%} "
        f"(decisive {f16.decisive_top1_agreement:.0%} of {f16.decisive_positions}/"
        f"{f16.n_positions}) "
        f"max |Δlogit| {f16.max_abs_diff:.3g} (tol {f16.tolerance:.3g}), "
        f"q8_0 top-1 {numbers['q8_0'].top1_agreement:.1%} "
        f"max |Δlogit| {numbers['q8_0'].max_abs_diff:.3g}; "
        f"train+merge {merge_s:.1f}s, total {total:.1f}s"
    )
