"""Hardware probe and live samples: no NVML, a faked unified-memory GPU (GB10), a discrete GPU."""

from __future__ import annotations

import os
import platform
import types

import pytest

from spark_tui.core.model import gpus, hardware, usage

GB = 10**9


@pytest.fixture(autouse=True)
def _fresh_nvml(monkeypatch, tmp_path):
    gpus.reset_nvml()
    monkeypatch.setenv("SPARK_TUI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    yield
    gpus.reset_nvml()


class FakeNVMLError(Exception):
    def __init__(self, value: int = 999) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


class NotSupported(FakeNVMLError):
    def __init__(self) -> None:
        super().__init__(3)


def fake_pynvml(*, name: str, memory: tuple[int, int] | None, machine_ats: bool = False):
    """A stand-in for pynvml with one GPU; memory=None answers NotSupported (like GB10)."""
    mod = types.SimpleNamespace()
    mod.NVMLError = FakeNVMLError
    mod.NVMLError_NotSupported = NotSupported
    mod.NVML_ERROR_NOT_SUPPORTED = 3
    mod.NVML_TEMPERATURE_GPU = 0
    mod.NVML_DEVICE_ADDRESSING_MODE_ATS = 2
    mod.inits = 0

    def init():
        mod.inits += 1

    def meminfo(handle):
        if memory is None:
            raise NotSupported()
        return types.SimpleNamespace(total=memory[0], used=memory[1], free=memory[0] - memory[1])

    def procs(handle):
        used = None if memory is None else 5 * GB
        return [types.SimpleNamespace(pid=os.getpid(), usedGpuMemory=used)]

    mod.nvmlInit = init
    mod.nvmlShutdown = lambda: None
    mod.nvmlDeviceGetCount = lambda: 1
    mod.nvmlDeviceGetHandleByIndex = lambda i: f"h{i}"
    mod.nvmlDeviceGetName = lambda h: name.encode()
    mod.nvmlDeviceGetMemoryInfo = meminfo
    mod.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=87, memory=40)
    mod.nvmlDeviceGetTemperature = lambda h, sensor: 61
    mod.nvmlDeviceGetPowerUsage = lambda h: 45_500  # mW
    mod.nvmlDeviceGetEnforcedPowerLimit = lambda h: 140_000
    mod.nvmlDeviceGetComputeRunningProcesses = procs
    mod.nvmlDeviceGetGraphicsRunningProcesses = lambda h: []
    mod.nvmlSystemGetProcessName = lambda pid: b"/usr/bin/python3"
    mod.nvmlDeviceGetAddressingMode = lambda h: 2 if machine_ats else 0
    return mod


def use_nvml(monkeypatch, mod) -> None:
    monkeypatch.setattr(gpus, "_import_pynvml", lambda: mod)
    gpus.reset_nvml()


def test_probe_without_nvml_is_a_normal_cpu_machine(monkeypatch, meminfo) -> None:
    def missing():
        raise ImportError("No module named 'pynvml'")

    monkeypatch.setattr(gpus, "_import_pynvml", missing)
    p = hardware.probe()
    assert p.gpus == [] and not p.has_gpu and not p.unified_memory
    assert "not installed" in p.nvml_status
    assert p.target == "cpu"
    b = p.budget()
    assert b.target == "cpu" and b.bytes == p.mem_available
    assert p.page_cache == 65_000_000 * 1024 and p.buffers == 1_000_000 * 1024
    assert p.swap_used == 2_000_000 * 1024
    assert p.cpu_cores_logical >= 1
    assert p.disk_free_home is not None and p.disk_free_hf_cache is not None
    s = usage.sample()
    assert s.gpus == [] and s.process_rss is None and 0 < s.mem_fraction < 1


def test_probe_when_the_driver_is_missing(monkeypatch, meminfo) -> None:
    mod = fake_pynvml(name="x", memory=(1, 0))

    def broken():
        raise FakeNVMLError(12)

    mod.nvmlInit = broken
    use_nvml(monkeypatch, mod)
    p = hardware.probe()
    assert p.gpus == [] and "NVML" in p.nvml_status


def test_fake_gb10_is_detected_as_unified_memory(monkeypatch, meminfo) -> None:
    use_nvml(monkeypatch, fake_pynvml(name="NVIDIA GB10", memory=None))
    p = hardware.probe()
    assert p.unified_memory and p.target == "unified"
    (g,) = p.gpus
    assert g.unified and g.memory_total is None and g.memory_used is None
    assert (g.utilization, g.temperature) == (87, 61)
    assert g.power_w == pytest.approx(45.5) and g.power_limit_w == pytest.approx(140)
    assert g.processes and g.processes[0].pid == os.getpid()
    assert g.processes[0].used_bytes is None and g.processes[0].name == "python3"
    b = p.budget()
    assert b.target == "unified" and b.bytes == p.mem_available
    assert b.page_cache == p.page_cache + p.buffers
    assert b.free_without_cache == p.mem_free
    s = usage.sample(os.getpid())
    assert s.unified_memory and s.gpus[0].utilization == 87 and s.gpus[0].memory_total is None
    assert s.process_rss and s.process_rss > 0


def test_not_supported_memory_alone_means_unified(monkeypatch, meminfo) -> None:
    use_nvml(monkeypatch, fake_pynvml(name="NVIDIA Future iGPU", memory=None))
    assert hardware.probe().unified_memory


def test_aarch64_ats_gpu_with_system_sized_memory_is_unified(monkeypatch, meminfo) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    total = 125_000_000 * 1024
    use_nvml(monkeypatch, fake_pynvml(name="NVIDIA X", memory=(total, GB), machine_ats=True))
    assert hardware.probe().unified_memory


def test_discrete_gpu_budget_is_its_free_memory(monkeypatch, meminfo) -> None:
    use_nvml(monkeypatch, fake_pynvml(name="NVIDIA H100 80GB HBM3", memory=(80 * GB, 10 * GB)))
    p = hardware.probe()
    assert not p.unified_memory and p.target == "gpu"
    (g,) = p.gpus
    assert g.memory_free == 70 * GB
    assert g.processes[0].used_bytes == 5 * GB
    b = p.budget()
    assert b.target == "gpu" and b.bytes == 70 * GB and "H100" in b.source


def test_nvml_is_initialised_once(monkeypatch, meminfo) -> None:
    mod = fake_pynvml(name="NVIDIA GB10", memory=None)
    use_nvml(monkeypatch, mod)
    hardware.probe()
    usage.sample()
    usage.sample()
    assert mod.inits == 1


def test_process_rss() -> None:
    assert usage.process_rss(os.getpid()) > 10**6
    assert usage.process_rss(2**22 + 12345) is None


def test_probe_serialises(meminfo) -> None:
    import json

    d = hardware.probe(with_processes=False).to_dict()
    json.dumps(d)
    assert d["budget"]["bytes"] > 0
