"""Merging LoRA / DoRA / QLoRA adapters: merged logits equal the adapter model's.

Tolerances (stated in spark_tui.core.export.merge.MERGE_TOLERANCE): fp32 merges
must agree to 1e-3 + 1e-4 * max|logit|; the QLoRA path merges in bfloat16 and
must agree to 0.1 + 0.03 * max|logit| with the adapter applied to the same
16-bit base.  The independent re-check here reloads the saved folder and
compares it in fp32 with a fresh PeftModel: 1e-4 * max|logit|.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from spark_tui.core.export.merge import merge_adapter

pytestmark = pytest.mark.slow

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_adapter(base_dir: Path, out: Path, *, dora: bool = False) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(7)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    cfg = LoraConfig(
        r=8,
        lora_alpha=16,
        target_modules=TARGETS,
        use_dora=dora,
        init_lora_weights=False,  # random A and B: the adapter really changes the model
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.mul_(0.5)
    model.save_pretrained(out)
    return out


def _logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


@pytest.fixture(scope="module")
def lora_adapter(llama3_dir, tmp_path_factory):
    return make_adapter(llama3_dir, tmp_path_factory.mktemp("lora") / "adapter")


@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
def test_merge_equals_adapter_model(llama3_dir, tmp_path, dora, lora_adapter):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = lora_adapter if not dora else make_adapter(llama3_dir, tmp_path / "dora", dora=True)
    out = tmp_path / "merged"
    res = merge_adapter(adapter, out, base_model=str(llama3_dir))
    assert res.checked and res.passed, res.summary_lines()
    assert res.dora is dora and res.dtype == "float32"
    assert res.max_abs_diff <= res.tolerance
    # a standard folder: safetensors, tokenizer + chat template, generation config
    names = {p.name for p in out.iterdir()}
    assert "model.safetensors" in names and "config.json" in names
    assert "tokenizer.json" in names and "generation_config.json" in names
    assert "merge_report.json" in names
    assert not any(n.startswith("adapter_") for n in names)
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.chat_template and "<|start_header_id|>" in tok.chat_template

    # independent check: reload both from disk
    ids = tok("Fine-tuning small language models is fun.")["input_ids"]
    base = AutoModelForCausalLM.from_pretrained(llama3_dir, dtype=torch.float32)
    base_logits = _logits(base, ids)
    peft = PeftModel.from_pretrained(base, adapter).eval()
    want = _logits(peft, ids)
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    got = _logits(merged, ids)
    scale = float(want.abs().max())
    assert float((want - got).abs().max()) <= 1e-4 * scale
    assert float((want - base_logits).abs().max()) > 0.05 * scale  # the adapter mattered


def test_qlora_merges_into_16bit_base(llama3_dir, lora_adapter, tmp_path):
    out = tmp_path / "merged-qlora"
    res = merge_adapter(lora_adapter, out, base_model=str(llama3_dir), qlora=True)
    assert res.qlora and res.dtype == "bfloat16"
    assert any("16" in n and "4-bit" in n for n in res.notes), res.notes
    assert res.passed, res.summary_lines()
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg.get("dtype") or cfg.get("torch_dtype")) == "bfloat16"


def test_merge_failure_leaves_no_folder(llama3_dir, lora_adapter, tmp_path, monkeypatch):
    from transformers import PreTrainedModel

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", boom)
    out = tmp_path / "merged"
    with pytest.raises(OSError):
        merge_adapter(lora_adapter, out, base_model=str(llama3_dir), check=False)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_merge_run_and_cli(llama3_dir, lora_adapter, tmp_path, monkeypatch, capsys):
    import shutil

    from spark_tui.cli import main
    from spark_tui.config import RunConfig
    from spark_tui.core.runs import create_run

    monkeypatch.setenv("SPARK_TUI_HOME", str(tmp_path / "home"))
    cfg = RunConfig()
    cfg.model.id = str(llama3_dir)
    cfg.name = "tiny"
    run = create_run(cfg)
    shutil.copytree(lora_adapter, run.adapter_dir)
    assert main(["merge", run.id]) == 0
    out = capsys.readouterr().out
    assert "logits check" in out and "ok" in out
    assert (run.path / "merged" / "model.safetensors").exists()
    # then export the run (no verification here; test_gguf_export covers it)
    assert main(["export", run.id, "--type", "f16", "--no-verify"]) == 0
    assert (run.path / "gguf" / f"{run.id}-f16.gguf").exists()
    summary = json.loads((run.path / "gguf" / "deploy.json").read_text())
    assert "f16" in summary["export"]["outputs"]
