"""DPO/KTO reference models: adapters-disabled with PEFT, a copy of the policy for full fine-tuning."""

from __future__ import annotations

import pytest
from test_orchestrate import tiny_cfg, train

from spark_tui.config import RunConfig
from spark_tui.core.train import orchestrate
from spark_tui.core.train.trainer import reference_is_a_copy


@pytest.mark.parametrize(
    ("objective", "reference", "peft", "copy"),
    [
        ("dpo", "auto", True, False),  # adapters disabled = the base
        ("dpo", "copy", True, True),
        ("dpo", "precompute", True, False),
        ("dpo", "auto", False, True),  # full fine-tuning needs a second model
        ("kto", "auto", False, True),
        ("dpo", "precompute", False, False),  # log-probs computed once, no model kept
        ("sft", "auto", False, False),
        ("simpo", "auto", False, False),  # reference-free
    ],
)
def test_which_runs_get_a_copy_of_the_policy(objective, reference, peft, copy):
    cfg = RunConfig()
    cfg.method.objective = objective
    cfg.preference.reference = reference
    assert reference_is_a_copy(cfg, peft=peft) is copy


@pytest.mark.slow
def test_full_finetune_dpo_reference_is_the_policy_as_loaded(
    spark_home, default_model_dir, tmp_path, monkeypatch
):
    """Same weights, dtype and device as the policy, frozen — not a reload by name from the Hub."""
    import torch

    seen: dict = {}
    build = orchestrate.build_trainer

    def capture(*args, **kwargs):
        trainer = build(*args, **kwargs)
        ref, policy = trainer.ref_model, trainer.model
        seen["ref"] = ref is not None and ref is not policy
        seen["dtype"] = (next(ref.parameters()).dtype, next(policy.parameters()).dtype)
        seen["device"] = (next(ref.parameters()).device, next(policy.parameters()).device)
        seen["frozen"] = not any(p.requires_grad for p in ref.parameters())
        seen["same"] = all(
            torch.equal(a, b) for a, b in zip(ref.parameters(), policy.parameters(), strict=True)
        )
        seen["name"] = ref.config._name_or_path == policy.config._name_or_path
        return trainer

    monkeypatch.setattr(orchestrate, "build_trainer", capture)

    def reload_by_name(*a, **k):  # TRL's fallback: from the Hub id, `main` revision
        raise AssertionError("the reference must not be reloaded by name")

    import trl.trainer.dpo_trainer as dpo_module

    monkeypatch.setattr(dpo_module, "create_model_from_path", reload_by_name)
    cfg = tiny_cfg(tmp_path, "dpo", "full")
    run, st = train(cfg)
    assert st["state"] == "finished", st.get("error")
    assert seen["ref"] and seen["frozen"] and seen["same"] and seen["name"]
    assert seen["dtype"][0] == seen["dtype"][1] and seen["device"][0] == seen["device"][1]
    assert (run.model_dir / "config.json").exists()
