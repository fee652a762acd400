"""The progress line every long step shows: stage, amount in its unit, percent, time left."""

from __future__ import annotations

from spark_tui.core.base.progress import StageProgress, eta_seconds, fmt_amount, progress_line
from spark_tui.core.evaluate.progress import Steps


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_units_amounts_and_percent():
    assert fmt_amount(120, 272, "tensors") == "120 / 272 tensors"
    assert fmt_amount(5 * 1024**2, 80 * 1024**2, "bytes") == "5.0 / 80.0 MB"
    assert fmt_amount(3 * 1024**3, 4 * 1024**3, "bytes") == "3.0 / 4.0 GB"
    assert fmt_amount(1200, None, "rows") == "1,200 rows"
    assert progress_line("building", 0, 1) == "building · 0 %"  # a one-step stage: no "0 / 1"
    assert progress_line("downloading", 0, None) == "downloading"


def test_time_left_follows_the_rate_since_the_stage_began():
    clock = Clock()
    sp = StageProgress(clock=clock)
    assert sp.update("export: write", 0, 200) == "export: write · 0 / 200 tensors · 0 %"
    clock.t += 10
    line = sp.update("export: write", 50, 200)
    assert line == "export: write · 50 / 200 tensors · 25 % · 0:30 left"
    # A new stage starts its own clock: no time left until it has moved.
    line = sp.update("export: quantize", 0, 100 * 1024**2)
    assert line.endswith("0 %") and "left" not in line
    clock.t += 4
    assert sp.update("export: quantize", 50 * 1024**2, 100 * 1024**2).endswith("0:04 left")


def test_no_guess_too_early():
    assert eta_seconds(1, 1000, 30.0) is None  # 0.1 % done says too little
    assert eta_seconds(500, 1000, 0.2) is None  # too soon
    assert eta_seconds(500, 1000, 10.0) == 10.0
    assert eta_seconds(1000, 1000, 10.0) is None  # done


def test_evaluation_phases_count_their_own_rows():
    seen: list[tuple[float, str]] = []
    steps = Steps(56, lambda f, m: seen.append((f, m)), None)
    steps.begin("base: loss on held-out rows")
    steps.advance(16, "base: loss on held-out rows", of=28)
    steps.advance(12, "base: loss on held-out rows", of=28)
    steps.advance(8, "base and tuned: answering held-out prompts", of=16, unit="answers")
    msgs = [m for _f, m in seen]
    assert msgs[0].startswith("base: loss on held-out rows · 16 / 28 rows · 57 %")
    assert msgs[1].startswith("base: loss on held-out rows · 28 / 28 rows · 100 %")
    assert msgs[2].startswith("base and tuned: answering held-out prompts · 8 / 16 answers · 50 %")
    assert [round(f, 3) for f, _m in seen] == [round(16 / 56, 3), 0.5, round(36 / 56, 3)]
