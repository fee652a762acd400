"""What changes on a GPU for speed: logging cadence, data loader workers, Liger kernels."""

from __future__ import annotations

import dataclasses
import sys
import types

import pytest
from method_cases import CPU, GPU_BF16
from method_cases import method_cfg as _cfg

from spark_tui.config import RunConfig
from spark_tui.core.method import trainer_args, trl_compat


@pytest.mark.parametrize(
    ("device", "total", "expected"),
    [("cpu", 5000, 1), ("cuda", 5000, 10), ("cuda", 30, 1), ("cuda", 450, 4)],
)
def test_auto_logging_is_every_step_on_a_cpu_and_sparser_on_a_gpu(device, total, expected):
    assert trainer_args.logging_every(RunConfig(), device, total) == expected


def test_an_explicit_logging_interval_is_kept_everywhere():
    cfg = RunConfig().with_value("train.logging_steps", 5)
    assert trainer_args.logging_every(cfg, "cpu", 100) == 5
    assert trainer_args.logging_every(cfg, "cuda", 100000) == 5


def test_loader_workers_and_pinned_memory_only_on_a_gpu():
    cpu = trainer_args.dataloader_kwargs(CPU)
    assert cpu["dataloader_num_workers"] == 0 and cpu["dataloader_pin_memory"] is False
    gpu = trainer_args.dataloader_kwargs(GPU_BF16)
    assert gpu["dataloader_num_workers"] >= 2 and gpu["dataloader_pin_memory"] is True
    assert gpu["dataloader_persistent_workers"] is True


@pytest.mark.parametrize("objective", ["sft", "dpo", "simpo", "orpo", "kto", "reward"])
def test_every_gpu_setting_is_taken_by_the_installed_trl(objective, tmp_path):
    cfg = _cfg(objective)
    kw = trainer_args.trainer_kwargs(
        cfg, output_dir=tmp_path, hw=GPU_BF16, precision="bf16", has_eval=True, notes=[],
        checkpointing=False, total_steps=2000,
    )  # fmt: skip
    kw["use_liger_kernel"] = True
    known = {f.name for f in dataclasses.fields(trl_compat.trainer_classes(objective).config)}
    assert set(kw) <= known, set(kw) - known
    assert kw["logging_steps"] == 10 and kw["gradient_checkpointing"] is False


def test_checkpointing_follows_the_decision_and_the_config():
    def gc(cfg, decided):
        kw = trainer_args.trainer_kwargs(
            cfg, output_dir="/tmp/x", hw=CPU, precision="fp32", has_eval=False,
            checkpointing=decided,
        )  # fmt: skip
        return kw["gradient_checkpointing"]

    assert gc(RunConfig(), None) is True  # auto, undecided: the safe side
    assert gc(RunConfig(), False) is False
    assert gc(RunConfig().with_value("train.gradient_checkpointing", "off"), None) is False
    prompt = RunConfig().with_value("method.adapter", "prompt_tuning")
    assert gc(prompt, True) is False  # PEFT cannot checkpoint prompt tuning


def _fake_liger(monkeypatch, types_supported):
    pkg = types.ModuleType("liger_kernel")
    tr = types.ModuleType("liger_kernel.transformers")
    mp = types.ModuleType("liger_kernel.transformers.monkey_patch")
    mp.MODEL_TYPE_TO_APPLY_LIGER_FN = {t: object() for t in types_supported}
    for name, mod in (
        ("liger_kernel", pkg),
        ("liger_kernel.transformers", tr),
        ("liger_kernel.transformers.monkey_patch", mp),
    ):
        monkeypatch.setitem(sys.modules, name, mod)
    real = trainer_args.importlib.util.find_spec
    monkeypatch.setattr(
        trainer_args.importlib.util,
        "find_spec",
        lambda name, *a: object() if name == "liger_kernel" else real(name, *a),
    )


def test_liger_is_used_for_sft_on_a_gpu_when_installed_and_the_model_is_supported(monkeypatch):
    cfg = _cfg("sft")
    assert trainer_args.liger_choice(cfg, CPU, "llama") == (False, "")
    monkeypatch.setattr(trainer_args.importlib.util, "find_spec", lambda name, *a: None)
    on, note = trainer_args.liger_choice(cfg, GPU_BF16, "llama")
    assert on is False and "pip install liger-kernel" in note
    monkeypatch.undo()
    _fake_liger(monkeypatch, ["llama"])
    assert trainer_args.liger_choice(cfg, GPU_BF16, "llama")[0] is True
    on, note = trainer_args.liger_choice(cfg, GPU_BF16, "gpt_neox")
    assert on is False and "gpt_neox" in note
    assert trainer_args.liger_choice(_cfg("dpo"), GPU_BF16, "llama") == (False, "")
    off = cfg.with_value("train.liger_kernel", False)
    assert trainer_args.liger_choice(off, GPU_BF16, "llama") == (False, "")
