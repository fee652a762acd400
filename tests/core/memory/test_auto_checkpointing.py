"""Gradient checkpointing "auto": off when the run fits without it, on when it does not."""

from __future__ import annotations

import pytest

from spark_tui.config import RunConfig
from spark_tui.core.memory import estimator
from spark_tui.core.memory.breakdown import GB
from spark_tui.core.memory.estimator import checkpointing_decision, estimate_config
from spark_tui.core.memory.fit import verdict
from spark_tui.core.memory.suggestions import apply_suggestion
from spark_tui.core.model.hardware import Budget

L8 = "meta-llama/Llama-3.1-8B-Instruct"


def _cfg(checkpointing: str = "auto") -> RunConfig:
    cfg = RunConfig().with_value("model.id", L8).with_value("data.max_length", 4096)
    return cfg.with_value("train.gradient_checkpointing", checkpointing)


def _budget(gb: float) -> Budget:
    b = int(gb * GB)
    return Budget(b, "test budget", "gpu", b, 0)


def _totals() -> tuple[int, int]:
    on = estimate_config(_cfg("on"), target="gpu").total
    off = estimate_config(_cfg("off"), target="gpu").total
    return on, off


def test_the_estimate_without_checkpointing_is_the_bigger_one() -> None:
    on, off = _totals()
    assert off > on * 1.2  # the gap "auto" decides on is real at 4096 tokens


def test_auto_turns_it_off_when_the_run_fits_without_it() -> None:
    _, off = _totals()
    est = estimate_config(_cfg(), hardware=_budget(off / GB * 2))
    assert est.settings.gradient_checkpointing is False
    assert est.total == off
    assert any("auto → off" in n for n in est.notes)


def test_auto_keeps_it_on_when_only_checkpointing_makes_it_fit() -> None:
    on, off = _totals()
    # A budget the checkpointed run fits with room, the other one not.
    gb = on / GB / 0.8
    assert off > gb * GB
    est = estimate_config(_cfg(), hardware=_budget(gb))
    assert est.settings.gradient_checkpointing is True and est.total == on
    assert any("auto → on" in n for n in est.notes)
    assert verdict(est, _budget(gb)).status == "fits"


def test_auto_without_a_machine_counts_as_on_and_explicit_values_are_kept() -> None:
    on, off = _totals()
    assert estimate_config(_cfg()).settings.gradient_checkpointing is True
    big = _budget(off / GB * 3)
    assert estimate_config(_cfg("on"), hardware=big).settings.gradient_checkpointing is True
    tiny = _budget(1)
    assert estimate_config(_cfg("off"), hardware=tiny).settings.gradient_checkpointing is False


def test_a_run_set_off_that_does_not_fit_is_offered_checkpointing_on() -> None:
    on, off = _totals()
    gb = on / GB / 0.8
    v = verdict(estimate_config(_cfg("off"), hardware=_budget(gb)), _budget(gb))
    sg = next(s for s in v.suggestions if s.key == "gradient_checkpointing")
    assert sg.changes == {"train.gradient_checkpointing": "on"}
    assert apply_suggestion(_cfg("off"), sg).train.gradient_checkpointing == "on"


def test_the_training_process_decides_auto_against_the_probe(monkeypatch) -> None:
    from spark_tui.core.model import hardware

    _, off = _totals()
    monkeypatch.setattr(hardware, "probe", lambda **kw: _budget(off / GB * 2))
    assert checkpointing_decision(_cfg("on")) == (None, "")
    on_, why = checkpointing_decision(_cfg())
    assert on_ is False and "auto → off" in why
    monkeypatch.setattr(hardware, "probe", lambda **kw: _budget(1))
    assert checkpointing_decision(_cfg())[0] is True


def test_no_estimate_keeps_checkpointing_on(monkeypatch) -> None:
    def boom(*a, **kw):
        raise RuntimeError("no config.json")

    monkeypatch.setattr(estimator, "estimate_config", boom)
    on_, why = checkpointing_decision(_cfg())
    assert on_ is True and "no config.json" in why


@pytest.mark.parametrize(("old", "new"), [("true", "on"), ("false", "off")])
def test_a_run_toml_from_before_auto_still_loads(old: str, new: str) -> None:
    cfg = RunConfig.from_toml(f"[train]\ngradient_checkpointing = {old}\n")
    assert cfg.train.gradient_checkpointing == new
    assert RunConfig.from_toml(cfg.to_toml()).train.gradient_checkpointing == new

