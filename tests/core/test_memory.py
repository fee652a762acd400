"""The peak-memory estimator: the course's bands, the breakdown, verdict and suggestions."""

from __future__ import annotations

import argparse
import json

import pytest

from spark_tui.config import RunConfig
from spark_tui.core import catalog, memory
from spark_tui.core.errors import SparkError
from spark_tui.core.hardware import Budget, GpuInfo, HardwareProbe
from spark_tui.core.memory import GB, Settings, estimate, settings_for_method, verdict

L70 = "meta-llama/Llama-3.1-70B-Instruct"
L8 = "meta-llama/Llama-3.1-8B-Instruct"
COURSE = dict(max_length=2048, micro_batch=1, gradient_checkpointing=True)


def est(model: str, method: str, **kw) -> memory.Estimate:
    return estimate(model, settings_for_method(method, **{**COURSE, **kw}))


def spark_probe(*, available: float = 118, free: float = 100, cache: float = 15) -> HardwareProbe:
    """A DGX Spark as the probe sees it: GB10 with no NVML memory, 128 GB unified."""
    gpu = GpuInfo(0, "NVIDIA GB10", None, None, 0, 40, 10.0, 140.0, unified=True)
    return HardwareProbe(
        mem_total=int(128 * GB),
        mem_available=int(available * GB),
        mem_free=int(free * GB),
        page_cache=int(cache * GB),
        buffers=0,
        swap_total=0,
        swap_used=0,
        cpu_cores_logical=20,
        cpu_cores_physical=20,
        machine="aarch64",
        gpus=[gpu],
        unified_memory=True,
    )


# ---- the course's sanity bands ----------------------------------------------------------


def test_llama_70b_qlora_in_40_to_60_gb() -> None:
    e = est(L70, "qlora")
    assert 40 * GB <= e.total <= 60 * GB, e.total_gb


def test_llama_8b_lora_in_14_to_24_gb() -> None:
    e = est(L8, "lora")
    assert 14 * GB <= e.total <= 24 * GB, e.total_gb


def test_llama_8b_full_adamw_well_over_100_gb_and_wont_fit_a_spark() -> None:
    e = est(L8, "full", optimizer="adamw")
    assert e.total > 120 * GB, e.total_gb
    v = verdict(e, spark_probe())
    assert v.status == "wont_fit"


def test_70b_qlora_fits_a_spark_and_8b_lora_fits() -> None:
    assert verdict(est(L70, "qlora", target="unified"), spark_probe()).status == "fits"
    assert verdict(est(L8, "lora", target="unified"), spark_probe()).status == "fits"


# ---- the breakdown --------------------------------------------------------------------


def test_breakdown_adds_up_and_serialises() -> None:
    e = est(L8, "lora")
    parts = e.breakdown()
    assert set(parts) == set(memory.BREAKDOWN_KEYS)
    assert sum(parts.values()) == e.total
    assert all(v >= 0 for v in parts.values())
    d = e.to_dict()
    json.dumps(d)
    assert d["total_gb"] == pytest.approx(e.total / GB, abs=0.01)
    labels = [label for label, _ in e.rows()]
    assert labels[-1] == "Total peak" and "Reference model" in labels


def test_qlora_keeps_embeddings_and_head_in_16_bit() -> None:
    a = catalog.get(L8).arch
    e = est(L8, "qlora")
    non_linear = a.param_count() - a.linear_params
    expected = a.linear_params * memory.NF4_BYTES_DQ + non_linear * 2
    assert e.weights == pytest.approx(expected, rel=1e-6)
    assert memory.NF4_BYTES_DQ == pytest.approx(0.516, abs=0.002)
    no_dq = estimate(L8, settings_for_method("qlora", double_quant=False, **COURSE))
    assert no_dq.weights > e.weights


def test_full_ft_bytes_per_param() -> None:
    p = catalog.get(L8).params
    master = est(L8, "full")
    assert master.weights == 4 * p and master.gradients == 4 * p and master.optimizer == 8 * p
    pure = est(L8, "full", master_weights=False)
    assert pure.weights == 2 * p and pure.gradients == 2 * p and pure.optimizer == 4 * p
    eight = est(L8, "full", optimizer="adamw_8bit")
    paged = est(L8, "full", optimizer="paged_adamw_8bit")
    assert eight.optimizer == paged.optimizer < master.optimizer / 3.5


def test_lora_adapter_count_matches_peft_formula() -> None:
    a = catalog.get(L8).arch
    h, i, kv = a.hidden_size, a.intermediate_size, a.kv_dim
    per_layer = 16 * ((h + h) + 2 * (h + kv) + (h + h) + 2 * (h + i) + (i + h))
    e = est(L8, "lora", lora_r=16)
    assert e.params_trainable == a.num_layers * per_layer
    assert e.adapters == 4 * e.params_trainable  # fp32 adapters
    attn = est(L8, "lora", target_modules="attention")
    assert attn.params_trainable == a.num_layers * 16 * (2 * (h + h) + 2 * (h + kv))
    assert est(L8, "lora", lora_r=64).params_trainable == 4 * e.params_trainable
    listed = est(L8, "lora", target_modules="q_proj,v_proj")
    assert listed.params_trainable == a.num_layers * 16 * ((h + h) + (h + kv))


def test_phi3_fused_projections() -> None:
    a = catalog.get("microsoft/Phi-3.5-mini-instruct").arch
    h, i = a.hidden_size, a.intermediate_size
    e = est("microsoft/Phi-3.5-mini-instruct", "lora")
    per_layer = 16 * ((h + 3 * h) + (h + h) + (h + 2 * i) + (i + h))
    assert e.params_trainable == a.num_layers * per_layer


def test_unknown_target_module() -> None:
    with pytest.raises(SparkError, match="target module"):
        est(L8, "lora", target_modules="not_a_layer")


@pytest.mark.parametrize(
    ("field", "small", "large"),
    [
        ("max_length", 1024, 4096),
        ("micro_batch", 1, 4),
        ("gradient_checkpointing", True, False),
        ("lora_r", 8, 128),
    ],
)
def test_monotonic_in_the_settings(field: str, small, large) -> None:
    lo = est(L8, "lora", **{field: small})
    hi = est(L8, "lora", **{field: large})
    assert hi.total > lo.total


def test_methods_are_ordered() -> None:
    q, lo, d, f = (est(L8, m) for m in ("qlora", "lora", "dora", "full"))
    assert q.total < lo.total < d.total < f.total
    rs = est(L8, "rslora")
    assert rs.total == lo.total  # rsLoRA only changes the scaling
    assert d.params_trainable > lo.params_trainable  # magnitude vectors


def test_checkpointing_changes_activations_not_weights() -> None:
    on, off = est(L8, "lora"), est(L8, "lora", gradient_checkpointing=False)
    assert on.weights == off.weights and off.activations > 3 * on.activations


def test_preference_objectives() -> None:
    sft = est(L8, "lora")
    dpo = est(L8, "lora", objective="dpo")
    assert dpo.settings.resolved_reference == "adapter_disabled" and dpo.reference == 0
    assert dpo.activations > sft.activations  # chosen + rejected
    copy = est(L8, "lora", objective="dpo", reference="copy")
    assert copy.reference == copy.weights
    pre = est(L8, "lora", objective="dpo", reference="precompute")
    assert pre.reference == 0
    full_dpo = est(L8, "full", objective="dpo")
    assert full_dpo.settings.resolved_reference == "copy" and full_dpo.reference == full_dpo.weights
    for obj in ("simpo", "orpo"):
        e = est(L8, "lora", objective=obj)
        assert e.reference == 0 and e.settings.resolved_reference == "none"
        assert e.activations > dpo.activations  # they materialise full logits
    kto = est(L8, "lora", objective="kto", micro_batch=2)
    assert kto.settings.resolved_reference == "adapter_disabled"
    assert any("KTO" in n for n in est(L8, "lora", objective="kto").notes)
    reward = est(L8, "lora", objective="reward")
    assert reward.reference == 0


def test_precision_and_targets() -> None:
    cpu = est("default", "lora", precision="auto", target="cpu")
    gpu = est("default", "lora", precision="auto", target="gpu")
    assert cpu.settings.resolved_precision == "fp32" and gpu.settings.resolved_precision == "bf16"
    assert cpu.weights == 2 * gpu.weights
    unified = est(L8, "lora", target="unified")
    assert unified.overhead > est(L8, "lora", target="gpu").overhead


def test_explicit_args_and_runconfig_agree() -> None:
    cfg = RunConfig()
    cfg = cfg.with_value("model.id", L8).with_value("data.max_length", 2048)
    cfg = cfg.with_value("train.micro_batch_size", 1).with_value("method.adapter", "qlora")
    from_cfg = memory.estimate_config(cfg, target="gpu")
    explicit = estimate(catalog.get(L8).arch, adapter="qlora", max_length=2048, micro_batch=1)
    assert from_cfg.total == explicit.total


def test_bad_settings_and_unknown_model() -> None:
    with pytest.raises(SparkError):
        Settings(optimizer="sgd")
    with pytest.raises(SparkError, match="method"):
        settings_for_method("magic")
    with pytest.raises(SparkError, match="architecture"):
        estimate("nobody/unknown-model-xyz")


# ---- verdict ----------------------------------------------------------------------------


def test_classify_thresholds() -> None:
    assert memory.classify(80, 100) == ("fits", 0.2)
    assert memory.classify(85, 100)[0] == "fits"
    assert memory.classify(86, 100)[0] == "tight"
    assert memory.classify(100, 100)[0] == "tight"
    assert memory.classify(101, 100)[0] == "wont_fit"
    assert memory.classify(1, 0)[0] == "wont_fit"


def test_verdict_against_a_budget() -> None:
    e = est(L8, "lora")
    assert verdict(e, int(e.total / 0.5)).status == "fits"
    v = verdict(e, int(e.total / 0.95))
    assert v.status == "tight" and 0 < v.headroom < 0.15 and v.suggestions
    v = verdict(e, int(e.total * 0.9))
    assert v.status == "wont_fit" and v.headroom < 0
    assert "Won't fit" in v.summary
    json.dumps(v.to_dict())


def test_fits_has_no_suggestions() -> None:
    assert verdict(est("default", "lora"), 100 * GB).suggestions == []


def test_suggestions_are_ranked_and_apply_to_the_config() -> None:
    cfg = RunConfig()
    for key, value in {
        "model.id": L8,
        "method.adapter": "full",
        "data.max_length": 2048,
        "train.micro_batch_size": 4,
        "train.grad_accum": 2,
        "train.gradient_checkpointing": False,
        "train.optimizer": "adamw",
    }.items():
        cfg = cfg.with_value(key, value)
    e = memory.estimate_config(cfg, target="unified")
    v = verdict(e, spark_probe())
    assert v.status == "wont_fit"
    sug = v.suggestions
    assert sug, "expected suggestions"
    keys = [s.key for s in sug]
    assert "gradient_checkpointing" in keys and "qlora" in keys and "micro_batch" in keys
    # fitting ones first, then the rest; each cheaper than the current estimate
    statuses = [s.status for s in sug]
    assert statuses == sorted(statuses, key=lambda s: memory._STATUS_RANK[s])
    assert statuses[0] == "fits"
    for s in sug:
        assert s.estimate.total < e.total and s.saves == e.total - s.estimate.total
        new_cfg = memory.apply_suggestion(cfg, s)  # dotted keys are valid RunConfig keys
        again = memory.estimate_config(new_cfg, target="unified")
        assert again.total == s.estimate.total, s.key
    mb = next(s for s in sug if s.key == "micro_batch")
    assert mb.changes["train.micro_batch_size"] * mb.changes["train.grad_accum"] == 8
    assert next(s for s in sug if s.key == "qlora").changes == {"method.adapter": "qlora"}


def test_paged_optimizer_and_shorter_length_suggestions() -> None:
    e = est(L8, "full", optimizer="adamw", max_length=8192)
    sug = memory.suggest(e, 120 * GB)
    by = {s.key: s for s in sug}
    assert by["paged_optimizer"].changes == {"train.optimizer": "paged_adamw_8bit"}
    assert by["paged_optimizer"].estimate.optimizer < e.optimizer
    if "max_length" in by:
        assert by["max_length"].changes["data.max_length"] < 8192


def test_smaller_model_and_combined_suggestions() -> None:
    e = est(L70, "lora")  # ~150 GB of 16-bit weights
    v = verdict(e, 30 * GB)
    keys = [s.key for s in v.suggestions]
    small = next(s for s in v.suggestions if s.key == "smaller_model")
    entry = catalog.get(small.changes["model.id"])
    assert entry is not None and entry.params < 70e9 and small.status == "fits"
    assert entry.family.split()[0] == "Llama"
    assert "qlora" in keys


def test_reference_copy_suggestion() -> None:
    e = est(L8, "lora", objective="dpo", reference="copy")
    sug = memory.suggest(e, int(e.total * 0.97))
    ref = next(s for s in sug if s.key == "reference")
    assert ref.changes == {"preference.reference": "adapter_disabled"}
    assert ref.estimate.reference == 0


def test_unified_memory_page_cache_warning() -> None:
    e = est(L70, "qlora", target="unified")
    v = verdict(e, spark_probe(available=110, free=40, cache=70))
    assert v.drop_cache_hint
    assert any("drop_caches" in w and "Page cache" in w for w in v.warnings)
    calm = verdict(e, spark_probe(available=118, free=110, cache=5))
    assert not calm.drop_cache_hint
    assert any("reclaimable" in w for w in calm.warnings)


def test_discrete_gpu_budget() -> None:
    gpu = GpuInfo(0, "NVIDIA H100", 80 * GB, 2 * GB, 0, 30, 70.0, 700.0)
    probe = HardwareProbe(
        mem_total=int(256 * GB),
        mem_available=int(200 * GB),
        mem_free=int(200 * GB),
        page_cache=0,
        buffers=0,
        swap_total=0,
        swap_used=0,
        cpu_cores_logical=16,
        cpu_cores_physical=16,
        machine="x86_64",
        gpus=[gpu],
    )
    v = verdict(est(L8, "lora"), probe)
    assert v.budget == 78 * GB and v.target == "gpu" and v.status == "fits"
    assert verdict(est(L70, "qlora"), probe).status == "fits"
    b = Budget(int(10 * GB), "test", "gpu", int(10 * GB), 0)
    assert verdict(est(L8, "lora"), b).status == "wont_fit"


def test_report_lines_show_the_same_numbers() -> None:
    v = verdict(est(L8, "full"), spark_probe())
    text = "\n".join(memory.report_lines(v))
    assert memory.fmt_gb(v.estimate.total) in text
    assert "Won't fit" in text and "Suggestions" in text and "method.adapter" in text


# ---- the CLI ----------------------------------------------------------------------------


def _run_memory(capsys, *argv: str) -> str:
    from spark_tui.commands import memory as cmd

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cmd.register(sub)
    args = parser.parse_args(["memory", *argv])
    assert args.func(args) == 0
    return capsys.readouterr().out


def test_cli_json_matches_the_estimator(capsys) -> None:
    out = _run_memory(
        capsys,
        "--model",
        L70,
        "--method",
        "qlora",
        "--max-length",
        "2048",
        "--target",
        "gpu",
        "--budget-gb",
        "128",
        "--json",
    )
    data = json.loads(out)
    e = est(L70, "qlora")
    assert data["total_peak_gb"] == round(e.total / GB, 2)
    assert set(data["breakdown_gb"]) == set(memory.BREAKDOWN_KEYS)
    assert data["verdict"]["status"] == "fits"
    assert 40 <= data["total_peak_gb"] <= 60


def test_cli_text_and_flags(capsys, monkeypatch) -> None:
    out = _run_memory(
        capsys,
        "--model",
        L8,
        "--method",
        "full",
        "--no-gradient-checkpointing",
        "--batch",
        "2",
        "--target",
        "unified",
        "--budget-gb",
        "120",
    )
    assert "Won't fit" in out and "Total peak" in out
    assert "gradient checkpointing off" in out
    e = estimate(
        L8,
        settings_for_method(
            "full", max_length=2048, micro_batch=2, gradient_checkpointing=False, target="unified"
        ),
    )
    assert memory.fmt_gb(e.total) in out


def test_cli_probes_this_machine(capsys, monkeypatch) -> None:
    from spark_tui.core import hardware

    monkeypatch.setattr(hardware, "_import_pynvml", lambda: (_ for _ in ()).throw(ImportError()))
    hardware.reset_nvml()
    out = _run_memory(capsys, "--model", "default", "--method", "lora", "--json")
    data = json.loads(out)
    assert data["hardware"]["target"] == "cpu"
    assert data["settings"]["target"] == "cpu" and data["precision"] == "fp32"
    hardware.reset_nvml()


def test_cli_config_file(capsys, tmp_path) -> None:
    cfg = RunConfig().with_value("model.id", L8).with_value("method.adapter", "qlora")
    path = tmp_path / "run.toml"
    cfg.save(path)
    out = _run_memory(
        capsys, "--config", str(path), "--target", "gpu", "--budget-gb", "80", "--json"
    )
    data = json.loads(out)
    assert data["method"] == "qlora" and data["settings"]["max_length"] == cfg.data.max_length
