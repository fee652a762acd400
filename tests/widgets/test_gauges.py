"""The live gauges widget inside a tiny host App: values update, colours follow thresholds."""

from __future__ import annotations

import itertools

from textual.app import App, ComposeResult
from textual.widgets import Label, Sparkline

from spark_tui.core.model.usage import GpuSample, Sample
from spark_tui.widgets.gauges import Gauge, MemoryGauges

GB = 10**9


class FakeSampler:
    """Memory use climbs by 10 GB of 100 GB on every reading; optionally one GB10-like GPU."""

    def __init__(self, gpu: bool = False, unified: bool = False) -> None:
        self.counter = itertools.count()
        self.gpu = gpu
        self.unified = unified
        self.pids: list[int | None] = []

    def __call__(self, pid: int | None) -> Sample:
        self.pids.append(pid)
        n = next(self.counter)
        used = min(99, 10 + 10 * n) * GB
        gpus = []
        if self.gpu:
            gpus.append(
                GpuSample(
                    0,
                    "NVIDIA GB10",
                    min(100, 5 * n),
                    None if self.unified else 40 * GB,
                    None if self.unified else 80 * GB,
                    50 + n,
                    30.0 + n,
                    100.0,
                )
            )
        return Sample(
            mem_total=100 * GB,
            mem_used=used,
            page_cache=3 * GB,
            swap_used=0,
            unified_memory=self.unified,
            gpus=gpus,
            process_rss=(2 + n) * GB if pid else None,
        )


class Host(App):
    def __init__(self, gauges: MemoryGauges) -> None:
        super().__init__()
        self.gauges = gauges

    def compose(self) -> ComposeResult:
        yield self.gauges


async def _wait_samples(pilot, gauges: MemoryGauges, n: int) -> None:
    for _ in range(100):
        if gauges.samples_taken >= n:
            return
        await pilot.pause(0.05)
    raise AssertionError(f"only {gauges.samples_taken} samples after waiting")


async def test_values_update_and_history_grows() -> None:
    sampler = FakeSampler()
    gauges = MemoryGauges(sampler=sampler, interval=0.05, pid=4242)
    async with Host(gauges).run_test(size=(100, 12)) as pilot:
        await _wait_samples(pilot, gauges, 1)
        mem = gauges.query_one("#gauge-mem", Gauge)
        first_text = mem.text
        first = mem.fraction
        await _wait_samples(pilot, gauges, 4)
        assert mem.fraction is not None and first is not None and mem.fraction > first
        assert mem.text != first_text
        assert len(mem.query_one(Sparkline).data) >= 4
        assert "GB" in str(mem.query_one(".gauge--value", Label).render())
        proc = gauges.query_one("#gauge-proc", Gauge)
        assert not proc.has_class("-hidden")
        assert proc.text.endswith("GB")
        assert 4242 in sampler.pids


async def test_colour_classes_follow_thresholds() -> None:
    gauges = MemoryGauges(sampler=FakeSampler(), interval=0.05)
    async with Host(gauges).run_test(size=(100, 12)) as pilot:
        await _wait_samples(pilot, gauges, 1)
        mem = gauges.query_one("#gauge-mem", Gauge)
        assert mem.has_class("-ok")  # 10 % used
        await _wait_samples(pilot, gauges, 9)  # 90 % and beyond
        assert mem.has_class("-warn") or mem.has_class("-crit")
        await _wait_samples(pilot, gauges, 10)
        assert mem.has_class("-crit")
        assert not mem.has_class("-ok")


async def test_no_pid_hides_process_row_and_pid_can_be_set_later() -> None:
    sampler = FakeSampler()
    gauges = MemoryGauges(sampler=sampler, interval=0.05)
    async with Host(gauges).run_test(size=(100, 12)) as pilot:
        await _wait_samples(pilot, gauges, 1)
        proc = gauges.query_one("#gauge-proc", Gauge)
        assert proc.has_class("-hidden")
        gauges.pid = 99
        await pilot.pause(0.01)
        assert not proc.has_class("-hidden")
        await _wait_samples(pilot, gauges, gauges.samples_taken + 2)
        assert 99 in sampler.pids
        assert proc.fraction is not None


async def test_gpu_gauges_appear_when_a_gpu_is_reported() -> None:
    gauges = MemoryGauges(sampler=FakeSampler(gpu=True), interval=0.05)
    async with Host(gauges).run_test(size=(100, 16)) as pilot:
        await _wait_samples(pilot, gauges, 3)
        ids = {g.id for g in gauges.query(Gauge)}
        assert {"gauge-gpu0-util", "gauge-gpu0-mem", "gauge-gpu0-temp", "gauge-gpu0-power"} <= ids
        util = gauges.query_one("#gauge-gpu0-util", Gauge)
        assert util.text.endswith("%")
        assert gauges.query_one("#gauge-gpu0-temp", Gauge).text.endswith("°C")


async def test_unified_gpu_has_no_gpu_memory_row() -> None:
    gauges = MemoryGauges(sampler=FakeSampler(gpu=True, unified=True), interval=0.05)
    async with Host(gauges).run_test(size=(100, 16)) as pilot:
        await _wait_samples(pilot, gauges, 2)
        ids = {g.id for g in gauges.query(Gauge)}
        assert "gauge-gpu0-mem" not in ids
        assert "gauge-gpu0-util" in ids
        label = gauges.query_one("#gauge-mem", Gauge).label_text
        assert label == "Unified memory"


async def test_sampler_errors_do_not_stop_the_gauges() -> None:
    calls = {"n": 0}
    good = FakeSampler()

    def flaky(pid: int | None) -> Sample:
        calls["n"] += 1
        if calls["n"] % 2:
            raise OSError("boom")
        return good(pid)

    gauges = MemoryGauges(sampler=flaky, interval=0.05)
    async with Host(gauges).run_test(size=(100, 12)) as pilot:
        await _wait_samples(pilot, gauges, 2)
        assert calls["n"] >= 3


async def test_no_gpu_means_no_gpu_rows() -> None:
    gauges = MemoryGauges(sampler=FakeSampler(), interval=0.05, compact=True)
    async with Host(gauges).run_test(size=(100, 12)) as pilot:
        await _wait_samples(pilot, gauges, 2)
        assert [g.id for g in gauges.query(Gauge)] == ["gauge-mem", "gauge-proc"]
        assert gauges.has_class("-compact")


def test_readings_fit_the_value_column_with_their_unit():
    from spark_tui.widgets.gauges import VALUE_CHARS, used_of

    assert used_of(3.7e9, 25e9, 3e9) == "3.7 / 25 GB +3 cache"
    assert used_of(118.3e9, 128e9, 15e9) == "118 / 128 GB +15 cache"
    assert used_of(None, 80e9) == "0.0 / 80 GB"
    for used, total, cache in [(999.9e9, 1024e9, 999e9), (12345e9, 99999e9, 5e9), (1e8, 8e9, 0)]:
        text = used_of(used, total, cache)
        assert len(text) <= VALUE_CHARS and "GB" in text
