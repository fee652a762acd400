"""The Train screen's curves: filed line by line, they equal the curves of the whole file."""

from __future__ import annotations

import math

from spark_tui.core.train.curves import SMOOTHING, Curves, downsample


def _lines(n: int) -> list[dict]:
    out: list[dict] = []
    for step in range(1, n + 1):
        out.append({"kind": "train", "step": step, "loss": 3.0 / step, "learning_rate": 1e-3,
                    "grad_norm": 1.0 + step % 3})  # fmt: skip
        if step % 5 == 0:
            out.append({"kind": "eval", "step": step, "eval_loss": 2.0 / step, "loss": 9.9})
    return out


def test_incremental_equals_whole_and_eval_lines_stay_out_of_the_train_loss():
    lines = _lines(23)
    whole = Curves()
    whole.extend(lines)
    bit = Curves()
    for i in range(0, len(lines), 4):
        bit.extend(lines[i : i + 4])
    for key in whole.series:
        assert bit.points(key) == whole.points(key)
    xs, ys = whole.points("loss")
    assert xs == list(range(1, 24)) and 9.9 not in ys
    assert whole.points("eval_loss")[0] == [5, 10, 15, 20]
    assert whole.last_train["step"] == 23
    assert len(whole.rows) == len(lines)
    ema = None
    for y in ys:
        ema = y if ema is None else SMOOTHING * ema + (1 - SMOOTHING) * y
    assert math.isclose(whole.points("smoothed")[1][-1], ema)


def test_a_reset_starts_over():
    c = Curves()
    c.extend(_lines(10))
    c.extend(_lines(3), reset=True)
    assert c.points("loss")[0] == [1, 2, 3] and len(c.rows) == 3


def test_downsample_is_bounded_and_keeps_the_ends():
    xs = list(range(10_000))
    dx, dy = downsample(xs, [x * 2 for x in xs], 80)
    assert len(dx) <= 80 and dx[0] == 0 and dx[-1] == 9_999
    assert all(y == 2 * x for x, y in zip(dx, dy, strict=True))
    assert downsample([1, 2], [3, 4], 80) == ([1, 2], [3, 4])
