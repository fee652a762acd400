"""The Method step's choices, their help lines, and which combinations can train."""

from __future__ import annotations

import pytest
from method_cases import method_cfg as _cfg

from spark_tui.config import ADAPTERS, METHODS, OBJECTIVES, OPTIMIZERS, RunConfig, known_keys
from spark_tui.core.base.errors import SparkError
from spark_tui.core.method import choices, presets


@pytest.mark.parametrize(
    ("method", "adapter", "dora", "rslora"),
    [
        ("full", "full", False, False),
        ("lora", "lora", False, False),
        ("qlora", "qlora", False, False),
        ("dora", "lora", True, False),
        ("rslora", "lora", False, True),
    ],
)
def test_apply_method(method, adapter, dora, rslora):
    cfg = _cfg(method=method)
    assert (cfg.method.adapter, cfg.method.use_dora, cfg.method.use_rslora) == (
        adapter,
        dora,
        rslora,
    )


def test_unknown_method_names_the_choices():
    with pytest.raises(SparkError, match="full, lora, qlora, dora, rslora"):
        choices.apply_method(RunConfig(), "lorra")


def test_every_method_setting_has_a_one_line_help():
    for key in known_keys():
        section = key.split(".")[0]
        if section in ("method", "lora", "train", "preference"):
            text = choices.help_for(key)
            assert text, f"no help for {key}"
            assert "\n" not in text and len(text) < 120, key
    for table in (choices.OBJECTIVES, choices.ADAPTERS, choices.PRECISIONS, choices.OPTIMIZERS):
        assert table and all(table.values())


def test_every_cli_method_and_preset_has_a_picker_title():
    assert set(choices.METHOD_TITLES) == set(METHODS)
    assert list(presets.PRESET_TITLES) == list(presets.PRESETS)
    assert all(choices.METHOD_TITLES.values()) and all(presets.PRESET_TITLES.values())


def test_supported_objectives_follow_the_data():
    pairs = choices.supported_objectives({"format": {"format": "preference"}})
    assert all(pairs[o] == "" for o in ("dpo", "simpo", "orpo", "reward"))
    chat = choices.supported_objectives("messages")
    assert chat["sft"] == "" and chat["dpo"] and chat["kto"]
    kto = choices.supported_objectives("kto")
    assert kto["kto"] == "" and kto["dpo"]
    assert set(choices.supported_objectives(None).values()) == {""}


def test_combinations_that_cannot_train_are_refused():
    cfg = _cfg("dpo")
    cfg.method.adapter = "prompt_tuning"
    with pytest.raises(SparkError, match="SFT only"):
        choices.check_combination(cfg)
    cfg = _cfg(method="full")
    cfg.method.use_dora = True
    with pytest.raises(SparkError, match="DoRA"):
        choices.check_combination(cfg)


def test_the_methods_explanations_cover_exactly_the_schemas_choices():
    """One home for the lists (config.py); the Method step explains each, no more, no less."""
    assert tuple(choices.OBJECTIVES) == OBJECTIVES
    assert tuple(choices.ADAPTERS) == ADAPTERS
    assert tuple(choices.OPTIMIZERS) == OPTIMIZERS
