"""The verdict: fits / tight / won't fit against a budget, a probe, unified memory's page cache."""

from __future__ import annotations

import json

from spark_tui.core.memory.breakdown import GB
from spark_tui.core.memory.fit import verdict
from spark_tui.core.memory.headroom import classify
from spark_tui.core.model.gpus import GpuInfo
from spark_tui.core.model.hardware import Budget, HardwareProbe

L70 = "meta-llama/Llama-3.1-70B-Instruct"
L8 = "meta-llama/Llama-3.1-8B-Instruct"


def test_classify_thresholds() -> None:
    assert classify(80, 100) == ("fits", 0.2)
    assert classify(85, 100)[0] == "fits"
    assert classify(86, 100)[0] == "tight"
    assert classify(100, 100)[0] == "tight"
    assert classify(101, 100)[0] == "wont_fit"
    assert classify(1, 0)[0] == "wont_fit"


def test_verdict_against_a_budget(est) -> None:
    e = est(L8, "lora")
    assert verdict(e, int(e.total / 0.5)).status == "fits"
    v = verdict(e, int(e.total / 0.95))
    assert v.status == "tight" and 0 < v.headroom < 0.15 and v.suggestions
    v = verdict(e, int(e.total * 0.9))
    assert v.status == "wont_fit" and v.headroom < 0
    assert "Won't fit" in v.summary
    json.dumps(v.to_dict())


def test_fits_has_no_suggestions(est) -> None:
    assert verdict(est("default", "lora"), 100 * GB).suggestions == []


def test_unified_memory_page_cache_warning(est, spark_probe) -> None:
    e = est(L70, "qlora", target="unified")
    v = verdict(e, spark_probe(available=110, free=40, cache=70))
    assert v.drop_cache_hint
    assert any("drop_caches" in w and "Page cache" in w for w in v.warnings)
    calm = verdict(e, spark_probe(available=118, free=110, cache=5))
    assert not calm.drop_cache_hint
    assert any("reclaimable" in w for w in calm.warnings)


def test_discrete_gpu_budget(est) -> None:
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
