"""The TRL adapter: a moved API is one clear error naming the installed TRL version."""

from __future__ import annotations

import pytest

from spark_tui.core.method import trl_compat


def test_trl_compat_names_the_version_when_an_api_moved(monkeypatch):
    monkeypatch.setitem(
        trl_compat._LOCATIONS, "orpo", [("trl.nowhere", "ORPOTrainer", "ORPOConfig")]
    )
    with pytest.raises(trl_compat.TRLCompatError, match=r"TRL \d"):
        trl_compat.trainer_classes("orpo")
    # Only the moved objective fails: the others still import.
    assert trl_compat.trainer_classes("sft").trainer.__name__ == "SFTTrainer"


def test_make_config_refuses_to_drop_a_setting_that_defines_the_objective(caplog):
    import dataclasses

    @dataclasses.dataclass
    class OldConfig:  # a TRL config that lost `loss_type` (and never had `fancy_logging`)
        output_dir: str = ""
        beta: float = 0.1

    classes = trl_compat.TrainerClasses(kind="cpo", trainer=object, config=OldConfig, module="x")
    with pytest.raises(trl_compat.TRLCompatError) as exc:
        trl_compat.make_config(classes, output_dir="o", beta=2.0, loss_type="simpo")
    assert "loss_type" in str(exc.value) and f"TRL {trl_compat.trl_version()}" in str(exc.value)
    # a setting that changes nothing about what is trained is dropped with a warning
    with caplog.at_level("WARNING", logger="spark_tui"):
        cfg = trl_compat.make_config(classes, output_dir="o", beta=2.0, fancy_logging=True)
    assert cfg.beta == 2.0 and "fancy_logging" in caplog.text


def test_every_setting_we_pass_is_taken_by_the_installed_trl(tmp_path):
    """No objective loses a setting to the installed TRL/transformers (TensorBoard included)."""
    from method_cases import CPU, method_cfg

    from spark_tui.core.method import trainer_args

    for objective in ("sft", "dpo", "simpo", "orpo", "kto", "reward"):
        cfg = method_cfg(objective, "lora")
        cfg.train.report_to = "tensorboard"
        kw = trainer_args.trainer_kwargs(
            cfg, output_dir=tmp_path / "checkpoints", hw=CPU, precision="fp32", has_eval=True,
            notes=[],
        )
        kw["report_to"] = []  # tensorboard itself may not be installed here
        trl_compat.make_config(trl_compat.trainer_classes(objective), **kw)
    env = trainer_args.tracker_env(cfg, tmp_path)
    assert env == {"TENSORBOARD_LOGGING_DIR": str(tmp_path / "tensorboard")}
