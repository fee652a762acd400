"""The Axolotl side of a hand-off: its config, with the prompt strategy per objective.

Keys and values are those Axolotl 0.19's `validate_config` accepts and its
dataset loaders read: `rl` + `rl_beta`/`orpo_alpha`/`simpo_gamma` per
objective, `warmup_steps` (SimPO refuses `warmup_ratio`), KTO with
`remove_unused_columns: false` and no packing, `test_datasets` for the prepared
validation split (never `val_set_size`), and the dataset `type` whose row
layout `handoff_rows.axolotl_rows` writes.
"""

from __future__ import annotations

from typing import Any

from spark_tui.config import RunConfig
from spark_tui.core.review.handoff_facts import (
    PACKING_NOTE,
    RunFacts,
    base_model,
    batch_size,
    common_keys,
    lf_template_name,
    lora_targets,
    note_unsupported_adapter,
    template_text,
    total_steps,
    trained_precision,
    warmup_steps,
)
from spark_tui.core.review.handoff_rows import template_family


def _axolotl_datasets(cfg: RunConfig, facts: RunFacts, path: str, notes: list[str]) -> dict:
    """The Axolotl `datasets` entry for the objective's prompt strategy."""
    obj = cfg.method.objective
    if obj == "sft" and facts.text:
        return {"path": path, "type": "completion", "field": "text"}
    if obj == "sft":
        return {
            "path": path,
            "type": "chat_template",
            "field_messages": "messages",
            "message_property_mappings": {"role": "role", "content": "content"},
            "roles_to_train": ["assistant"],
            "train_on_eos": "turn",  # each assistant turn's end token, as the trainer's mask
        }
    if obj in ("dpo", "simpo"):
        return {
            "path": path,
            "type": "chat_template.default",
            "field_messages": "conversations",
            "field_chosen": "chosen",
            "field_rejected": "rejected",
        }
    if obj == "orpo":
        return {"path": path, "type": "chat_template.argilla"}
    if obj == "kto":
        # Resolved inside axolotl.prompt_strategies.kto: "kto.chatml..." would not load.
        return {"path": path, "type": f"{_kto_family(cfg, facts, notes)}.argilla_chat"}
    return {"path": path, "type": "bradley_terry.chat_template"}


def _kto_family(cfg: RunConfig, facts: RunFacts, notes: list[str]) -> str:
    """Axolotl's KTO strategies hard-code ChatML or Llama 3 instead of using the chat template."""
    family = template_family(template_text(cfg, facts)) or lf_template_name(cfg, facts)
    if family in ("chatml", "llama3"):
        return family
    if not any(n.startswith("KTO:") for n in notes):
        notes.append(
            f"KTO: Axolotl's KTO row formats are ChatML and Llama 3 only; this model's "
            f"template is '{family}', so its KTO rows are rendered as ChatML"
        )
    return "chatml"


def axolotl_config(
    cfg: RunConfig,
    data_file: str,
    output_dir: str = "./outputs",
    facts: RunFacts | None = None,
    notes: list[str] | None = None,
    eval_file: str | None = None,
) -> dict[str, Any]:
    """The Axolotl config equivalent to `cfg` (notes: what differs, for the header)."""
    facts = facts or RunFacts()
    notes = notes if notes is not None else []
    adapter = cfg.method.adapter
    obj = cfg.method.objective
    out: dict[str, Any] = {"base_model": base_model(cfg)}
    if cfg.model.revision:
        out["revision_of_model"] = cfg.model.revision
    out["trust_remote_code"] = cfg.model.trust_remote_code
    note_unsupported_adapter(cfg, notes)
    if adapter != "full":
        out["adapter"] = "qlora" if adapter == "qlora" else "lora"
        out["load_in_4bit"] = adapter == "qlora"
        out.update(lora_r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout)
        targets = lora_targets(cfg)
        if targets == "all":
            out["lora_target_linear"] = True
        else:
            out["lora_target_modules"] = targets
        if cfg.method.use_dora:
            out["peft_use_dora"] = True
        if cfg.method.use_rslora:
            out["peft_use_rslora"] = True
    p = cfg.preference
    if obj in ("dpo", "simpo", "orpo", "kto"):
        out["rl"] = obj
    if obj == "orpo":
        out["orpo_alpha"] = p.orpo_lambda  # Axolotl passes it on as TRL's ORPOConfig beta (λ)
    elif obj in ("dpo", "simpo", "kto"):
        out["rl_beta"] = p.beta_for(obj)
    if obj == "simpo":
        out["cpo_alpha"] = 0.0
        out["simpo_gamma"] = p.simpo_gamma  # absolute γ, TRL's CPOConfig (its loss uses γ/β)
    if obj == "kto":
        out.update(
            kto_desirable_weight=p.kto_desirable_weight,
            kto_undesirable_weight=p.kto_undesirable_weight,
            remove_unused_columns=False,  # Axolotl refuses KTO without it
        )
    if p.reference == "precompute" and obj == "dpo":
        out["precompute_ref_log_probs"] = True
    elif p.reference == "precompute" and obj == "kto":
        notes.append("preference.reference = 'precompute' has no KTO counterpart here")
    if obj == "reward":
        out["reward_model"] = True
    out["datasets"] = [_axolotl_datasets(cfg, facts, data_file, notes)]
    if facts.eval_rows and eval_file:
        out["test_datasets"] = [_axolotl_datasets(cfg, facts, eval_file, notes)]
    out["val_set_size"] = 0.0  # the prepared validation split is used as it is, never re-split
    # Our ChatML/Llama 3 templates render exactly as Axolotl's; "auto" is the tokenizer's own,
    # else ChatML, as in the trainer.
    out["chat_template"] = {"auto": "tokenizer_default_fallback_chatml"}.get(
        cfg.model.chat_template, cfg.model.chat_template
    )
    out.update(dataset_prepared_path="last_run_prepared", output_dir=output_dir)
    out.update(common_keys(cfg, "axolotl", facts, notes))
    out["excess_length_strategy"] = "truncate"  # as TRL does; Axolotl drops long rows by default
    if obj == "sft" and cfg.train.packing:
        out["sample_packing"] = True
        notes.append(PACKING_NOTE)
    _axolotl_warmup(cfg, facts, out, notes)
    _axolotl_precision(cfg, facts, out, notes)
    _axolotl_eval(cfg, facts, out, notes)
    if cfg.train.report_to == "tensorboard":
        out["use_tensorboard"] = True
    elif cfg.train.report_to != "none":
        notes.append(
            f"train.report_to = '{cfg.train.report_to}': set Axolotl's own tracker keys "
            "(wandb_project / mlflow_tracking_uri)"
        )
    return out


def _axolotl_warmup(cfg: RunConfig, facts: RunFacts, out: dict[str, Any], notes: list[str]) -> None:
    steps = warmup_steps(cfg, facts)
    if steps is not None:
        out["warmup_steps"] = steps
        if steps == 1:
            notes.append("warmup: Axolotl turns a 1-step warmup into 2 steps")
    elif cfg.method.objective == "simpo":
        # Axolotl refuses warmup_ratio for SimPO, and the step count needs the prepared rows.
        notes.append(
            "warmup: Axolotl's SimPO takes warmup_steps only and the run's step count is not "
            f"known before its data is prepared; set warmup_steps to ⌈{cfg.train.warmup_ratio} "
            "× total steps⌉"
        )
    else:
        out["warmup_ratio"] = cfg.train.warmup_ratio
        notes.append("warmup: Axolotl rounds warmup_ratio × steps down, transformers rounds up")


def _axolotl_precision(
    cfg: RunConfig, facts: RunFacts, out: dict[str, Any], notes: list[str]
) -> None:
    p = trained_precision(cfg, facts.precision)
    if p is None:
        out["bf16"] = "auto"
        notes.append(
            "bf16: auto picks bf16 where torch reports bf16 support (on pre-Ampere GPUs that "
            "includes emulation, where spark-tui picks fp16), else fp16"
        )
        return
    out.update(bf16=p == "bf16", fp16=p == "fp16")


def _axolotl_eval(cfg: RunConfig, facts: RunFacts, out: dict[str, Any], notes: list[str]) -> None:
    if not facts.eval_rows:
        return
    if cfg.train.eval_steps > 0:
        out["eval_steps"] = cfg.train.eval_steps
        return
    total = total_steps(cfg, facts)
    if total is not None:
        out["eval_steps"] = total  # spark-tui evaluates once, at the end
    else:
        notes.append("eval: without eval_steps Axolotl evaluates once per epoch")
    out["eval_batch_size"] = batch_size(cfg)
