"""What the model is loaded with: dtype, revision, remote code, 4-bit, and the attention kernel."""

from __future__ import annotations

from spark_tui.config import RunConfig
from spark_tui.core.method import precision
from spark_tui.core.method.precision import Hardware
from spark_tui.core.train.loading import _model_load_kwargs

CPU = Hardware(device="cpu", name="CPU", bf16=False, fp16=False)
H200 = Hardware(device="cuda", name="H200", bf16=True, fp16=True, capability=(9, 0))


def test_attention_implementation_is_explicit(monkeypatch):
    cfg = RunConfig()
    assert _model_load_kwargs(cfg, CPU, "fp32")["attn_implementation"] == "sdpa"
    monkeypatch.setattr(precision, "flash_attention_installed", lambda: False)
    assert _model_load_kwargs(cfg, H200, "bf16")["attn_implementation"] == "sdpa"
    monkeypatch.setattr(precision, "flash_attention_installed", lambda: True)
    assert _model_load_kwargs(cfg, H200, "bf16")["attn_implementation"] == "flash_attention_2"


def test_qlora_loads_4bit_on_the_gpu_in_the_chosen_compute_dtype():
    import torch

    cfg = RunConfig()
    cfg.method.adapter = "qlora"
    cfg.model.revision = "abc123"
    kw = _model_load_kwargs(cfg, H200, "bf16")
    assert kw["quantization_config"].load_in_4bit and kw["dtype"] == torch.bfloat16
    assert kw["device_map"] == {"": 0} and kw["revision"] == "abc123"
    assert kw["trust_remote_code"] is False
