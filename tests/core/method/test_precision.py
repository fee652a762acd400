"""Precision by hardware (no GPU needed: Hardware values stand in for the probe)."""

from __future__ import annotations

import pytest
from method_cases import CPU, GPU_BF16, GPU_OLD

from spark_tui.core.base.errors import SparkError
from spark_tui.core.method import precision


def test_precision_by_hardware():
    assert precision.choose_precision("auto", CPU) == "fp32"
    assert precision.choose_precision("auto", GPU_BF16) == "bf16"
    assert precision.choose_precision("auto", GPU_OLD) == "fp16"
    with pytest.raises(SparkError, match="fp16.*GPU"):
        precision.choose_precision("fp16", CPU)
    with pytest.raises(SparkError, match="bf16"):
        precision.choose_precision("bf16", GPU_OLD)


def _fake_cuda(monkeypatch, capability, name="GPU"):
    """torch.cuda as a GPU of this compute capability would show it (emulated bf16 included)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    # torch reports emulated bf16 as supported on pre-Ampere GPUs: it must not count.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)


@pytest.mark.parametrize(
    ("capability", "name", "bf16", "auto"),
    [((7, 5), "Tesla T4", False, "fp16"), ((7, 0), "V100", False, "fp16"),
     ((8, 0), "A100", True, "bf16"), ((9, 0), "H200", True, "bf16"), ((12, 1), "GB10", True, "bf16")],
)
def test_bf16_only_from_compute_capability_8(monkeypatch, capability, name, bf16, auto):
    _fake_cuda(monkeypatch, capability, name)
    hw = precision.detect_hardware()
    assert (hw.device, hw.name, hw.bf16, hw.fp16, hw.capability) == ("cuda", name, bf16, True, capability)
    assert precision.choose_precision("auto", hw) == auto


def test_fp16_runs_get_the_trainers_loss_scaler(tmp_path):
    from method_cases import method_cfg

    from spark_tui.core.method import trainer_args

    kw = trainer_args.trainer_kwargs(
        method_cfg(), output_dir=tmp_path, hw=GPU_OLD, precision="fp16", has_eval=False, notes=[]
    )
    # fp16=True is the Trainer's AMP with a dynamic GradScaler; bf16 is never asked of a T4.
    assert (kw["fp16"], kw["bf16"], kw["use_cpu"]) == (True, False, False)


def test_attention_is_chosen_explicitly(monkeypatch):
    monkeypatch.setattr(precision, "flash_attention_installed", lambda: True)
    assert precision.choose_attention(GPU_BF16, "bf16") == "flash_attention_2"
    assert precision.choose_attention(GPU_BF16, "fp32") == "sdpa"  # FA2 needs 16-bit
    assert precision.choose_attention(GPU_OLD, "fp16") == "sdpa"  # ... and Ampere or newer
    assert precision.choose_attention(CPU, "fp32") == "sdpa"
    monkeypatch.setattr(precision, "flash_attention_installed", lambda: False)
    assert precision.choose_attention(GPU_BF16, "bf16") == "sdpa"


@pytest.mark.parametrize("flash", [True, False])
def test_packing_only_with_a_varlen_attention(monkeypatch, tmp_path, flash):
    from method_cases import method_cfg

    from spark_tui.core.method import trainer_args

    monkeypatch.setattr(precision, "flash_attention_installed", lambda: flash)
    cfg = method_cfg()
    cfg.train.packing = True
    notes: list[str] = []
    kw = trainer_args.trainer_kwargs(
        cfg, output_dir=tmp_path, hw=GPU_BF16, precision="bf16", has_eval=False, notes=notes
    )
    assert kw["packing"] is flash
    assert any("packing is off" in n and "sdpa" in n for n in notes) is (not flash)
