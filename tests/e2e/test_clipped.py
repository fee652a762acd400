"""The tmux walkthrough's clipped-number check, on screens it must flag and must pass."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clipped import clipped_lines  # noqa: E402


def test_flags_values_cut_by_the_edge_or_a_border():
    screen = "\n".join([
        " System memory  ━━━━━━━━━━  3.7 GB / 25 (+3▁▂▃▄",  # the gauge label the bar cut
        " finished · step 30/30 · loss 1.2434 · lr 0.00e+00 · 2900 tok/s ·    elapsed 2:4",
        " held-out loss 2.412 → 1.4│",
    ])  # fmt: skip
    line = screen.splitlines()[1]
    assert len(line) == 80  # "2:4" of "2:43" at the right edge
    assert len(clipped_lines(screen, 80)) == 3
    assert len(clipped_lines(screen, 81)) == 2  # one column wider: the edge cut nothing


def test_passes_whole_values_and_spaced_borders():
    screen = "\n".join([
        " System memory  ━━━━━━━━━━  4.0 / 26 GB +3 cache   ████",
        " 3.57┤ ⢕⢕ train                        ││ on 16 rows",
        " Total peak        8.65 GB                   off. Without it the peak is 8.65",
        "^n Next ^b Back f1 Help s Stop K Kill r Resume d Detach ^q Quit     ▏^p palette",
    ])  # fmt: skip
    assert clipped_lines(screen, 80) == []
