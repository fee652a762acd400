"""merge_adapter end to end: merged logits equal the adapter model's; paths and errors.

Tolerances (stated in spark_tui.core.export.merge.MERGE_TOLERANCE): fp32 merges
must agree to 1e-3 + 1e-4 * max|logit|; the QLoRA path merges in bfloat16 and
must agree to 0.1 + 0.03 * max|logit| with the adapter applied to the same
16-bit base.  The independent re-check here reloads the saved folder and
compares it in fp32 with a fresh PeftModel: 1e-4 * max|logit|.  The PEFT
fallback and the streaming merge write the same tensors within 1e-5; adapters
the streaming merge does not cover (IA3, LoRA on an Embedding, modules_to_save
of tied embeddings) take the PEFT path and say so.  Tensor-by-tensor equality
with merge_and_unload and the memory bound are in test_stream_merge.py.
"""

from __future__ import annotations

import json

import merge_fixtures as mf
import pytest
import torch

from spark_tui.core.export.common import ExportError
from spark_tui.core.export.merge import merge_adapter

pytestmark = pytest.mark.slow


def _logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


@pytest.fixture(scope="module")
def lora_adapter(llama3_dir, tmp_path_factory):
    return mf.make_adapter(llama3_dir, tmp_path_factory.mktemp("lora") / "adapter")


@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
def test_merge_equals_adapter_model(llama3_dir, tmp_path, dora, lora_adapter):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = (
        lora_adapter if not dora else mf.make_adapter(llama3_dir, tmp_path / "d", use_dora=True)
    )
    out = tmp_path / "merged"
    res = merge_adapter(adapter, out, base_model=str(llama3_dir))
    assert res.path == "streaming" and res.shards == 1, res.notes
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
    assert res.qlora and res.dtype == "bfloat16" and res.path == "streaming"
    assert any("16" in n and "4-bit" in n for n in res.notes), res.notes
    assert res.passed, res.summary_lines()
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg.get("dtype") or cfg.get("torch_dtype")) == "bfloat16"


@pytest.mark.parametrize("method", ["streaming", "peft"])
def test_merge_failure_leaves_no_folder(llama3_dir, lora_adapter, tmp_path, monkeypatch, method):
    import safetensors.torch
    from transformers import PreTrainedModel

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", boom)
    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    out = tmp_path / "merged"
    with pytest.raises(OSError):
        merge_adapter(lora_adapter, out, base_model=str(llama3_dir), check=False, method=method)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_merge_run_and_cli(llama3_dir, lora_adapter, tmp_path, monkeypatch, capsys):
    import shutil

    from spark_tui.cli import main
    from spark_tui.config import RunConfig
    from spark_tui.core.train.runs import create_run

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
    summary = json.loads((run.path / "deploy.json").read_text())
    assert "f16" in summary["export"]["outputs"]


def test_peft_path_writes_the_same_model(llama3_dir, lora_adapter, tmp_path):
    """The fallback (merge_and_unload + save_pretrained) and the streaming merge agree."""
    peft_out, stream_out = tmp_path / "peft", tmp_path / "stream"
    res = merge_adapter(lora_adapter, peft_out, base_model=str(llama3_dir), method="peft")
    assert res.path == "peft" and res.passed
    assert any("merge_and_unload" in n for n in res.notes), res.notes
    merge_adapter(lora_adapter, stream_out, base_model=str(llama3_dir), check=False)
    a, b = mf.read_folder(peft_out), mf.read_folder(stream_out)
    assert set(a) == set(b)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-5
    ca, cb = (json.loads((d / "config.json").read_text()) for d in (peft_out, stream_out))
    assert ca["dtype"] == cb["dtype"] == "float32" and ca["vocab_size"] == cb["vocab_size"]
    assert json.loads((peft_out / "merge_report.json").read_text())["path"] == "peft"


@pytest.mark.parametrize("kind", ["ia3", "embedding_lora", "tied_modules_to_save"])
def test_unsupported_adapters_fall_back_to_peft(llama3_dir, qwen2_dir, tmp_path, kind):
    from peft import IA3Config

    base = llama3_dir
    if kind == "tied_modules_to_save":  # PEFT unties a trained copy of a tied embedding
        base = qwen2_dir
        adapter = mf.make_adapter(base, tmp_path / "a", modules_to_save=["embed_tokens"])
        why = "tied"
    elif kind == "ia3":
        adapter = mf.make_adapter(
            llama3_dir,
            tmp_path / "a",
            config_cls=IA3Config,
            target_modules=["k_proj", "v_proj", "down_proj"],
            feedforward_modules=["down_proj"],
        )
        why = "IA3"
    else:
        targets = [*mf.TARGETS, "embed_tokens"]
        adapter = mf.make_adapter(llama3_dir, tmp_path / "a", target_modules=targets)
        why = "Embedding"
    out = tmp_path / "merged"
    res = merge_adapter(adapter, out, base_model=str(base), check=kind != "ia3")
    assert res.path == "peft" and res.passed, res.summary_lines()
    assert any("merge_and_unload" in n and why in n for n in res.notes), res.notes
    assert any(why in line for line in res.summary_lines())
    ref = mf.reference_merge(base, adapter)
    got = mf.read_folder(out)
    assert max(float((got[k] - ref[k]).abs().max()) for k in got) <= 1e-6
    with pytest.raises(ExportError, match=why):
        merge_adapter(adapter, tmp_path / "m2", base_model=str(base), method="streaming")


def test_missing_adapter_config_names_the_file(llama3_dir, lora_adapter, tmp_path):
    import shutil

    broken = tmp_path / "adapter"
    shutil.copytree(lora_adapter, broken)
    (broken / "adapter_config.json").unlink()
    with pytest.raises(ExportError, match="adapter_config.json"):
        merge_adapter(broken, tmp_path / "out", base_model=str(llama3_dir))
    assert not (tmp_path / "out").exists()


def test_unknown_base_names_the_config(lora_adapter, tmp_path):
    import shutil

    adapter = tmp_path / "adapter"
    shutil.copytree(lora_adapter, adapter)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(tmp_path / "gone")
    (adapter / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ExportError, match="adapter_config.json"):
        merge_adapter(adapter, tmp_path / "out")
    cfg["base_model_name_or_path"] = "nobody/not-downloaded-model"
    (adapter / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ExportError, match="not-downloaded-model.*adapter_config.json"):
        merge_adapter(adapter, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_quantized_base_is_refused(llama3_dir, lora_adapter, tmp_path):
    import shutil

    base = tmp_path / "base"
    shutil.copytree(llama3_dir, base)
    cfg = json.loads((base / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    (base / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ExportError, match="config.json.*quantized"):
        merge_adapter(lora_adapter, tmp_path / "out", base_model=str(base), qlora=True)
