"""Presets and the learning rate a run gets when none is named."""

from __future__ import annotations

import pytest
from method_cases import method_cfg as _cfg

from spark_tui.config import RunConfig
from spark_tui.core.base.errors import SparkError
from spark_tui.core.method import presets


def test_course_preset_matches_the_course():
    cfg = presets.apply_preset(RunConfig(), "course")
    assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout) == (16, 32, 0.05)
    assert cfg.train.learning_rate == 2e-4
    assert cfg.train.epochs == 3.0 and cfg.train.max_steps == -1
    assert cfg.train.warmup_ratio == 0.03


def test_presets_are_valid_and_distinct():
    quick = presets.apply_preset(RunConfig(), "quick")
    best = presets.apply_preset(RunConfig(), "max_quality")
    assert 0 < quick.train.max_steps <= 100
    assert best.lora.r > quick.lora.r and best.method.use_dora
    assert set(presets.PRESETS) == {"quick", "course", "max_quality"}
    # Full fine-tuning gets a full-fine-tuning learning rate.
    full = _cfg(method="full")
    assert presets.apply_preset(full, "course").train.learning_rate < 1e-4
    with pytest.raises(SparkError, match="quick, course, max_quality"):
        presets.apply_preset(RunConfig(), "fastest")
