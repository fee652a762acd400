"""The LLaMA-Factory side of a hand-off: its train config and `dataset_info.json`.

Keys and values are those of LLaMA-Factory 0.9.5's own argument dataclasses
(`get_train_args` parses them with `HfArgumentParser.parse_dict`, so an unknown
key is an error and a value is taken as written): `stage` + `pref_loss` per
objective, `quantization_method: bnb`, `simpo_gamma` as the absolute margin,
`eval_dataset` for the prepared validation split (never `val_size`), and
`default_system` for the chat template's built-in system prompt.
"""

from __future__ import annotations

from typing import Any

from spark_tui.config import PAIRED_OBJECTIVES, RunConfig
from spark_tui.core.review.handoff_facts import (
    PACKING_NOTE,
    RunFacts,
    base_model,
    batch_size,
    common_keys,
    lf_template_name,
    lora_targets,
    note_unsupported_adapter,
    system_prompt_for,
    trained_precision,
    warmup_steps,
)

DATASET_NAME = "spark_tui_data"
EVAL_DATASET_NAME = "spark_tui_eval"

# LLaMA-Factory: stage + pref_loss per objective.
_LF_STAGE = {
    "sft": ("sft", None),
    "dpo": ("dpo", "sigmoid"),
    "simpo": ("dpo", "simpo"),
    "orpo": ("dpo", "orpo"),
    "kto": ("kto", None),
    "reward": ("rm", None),
}


def llamafactory_config(
    cfg: RunConfig,
    data_dir: str = ".",
    output_dir: str = "saves",
    facts: RunFacts | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """The LLaMA-Factory train config equivalent to `cfg` (notes: what differs, for the header)."""
    facts = facts or RunFacts()
    notes = notes if notes is not None else []
    obj = cfg.method.objective
    stage, pref_loss = _LF_STAGE[obj]
    text_sft = obj == "sft" and facts.text
    if text_sft:
        stage = "pt"  # plain-text rows: loss on every token, one row per sequence
    adapter = cfg.method.adapter
    out: dict[str, Any] = {"model_name_or_path": base_model(cfg)}
    if cfg.model.revision:
        out["model_revision"] = cfg.model.revision
    out.update(
        trust_remote_code=cfg.model.trust_remote_code,
        stage=stage,
        do_train=True,
        finetuning_type="full" if adapter == "full" else "lora",
    )
    note_unsupported_adapter(cfg, notes)
    if adapter != "full":
        targets = lora_targets(cfg)
        out.update(
            lora_rank=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            lora_target=targets if isinstance(targets, str) else ",".join(targets),
            use_dora=cfg.method.use_dora,
            use_rslora=cfg.method.use_rslora,
        )
    if adapter == "qlora":
        out.update(
            quantization_bit=4,
            quantization_method="bnb",  # LLaMA-Factory's QuantizationMethod.BNB
            quantization_type="nf4",
            double_quantization=True,
        )
    if pref_loss:
        out["pref_loss"] = pref_loss
        out["pref_beta"] = cfg.preference.beta_for(obj)
        if obj == "simpo":
            # LLaMA-Factory's simpo_gamma is the absolute margin γ (its loss uses γ/β), as in TRL.
            out["simpo_gamma"] = cfg.preference.simpo_gamma
    if stage == "kto":
        out.update(
            pref_beta=cfg.preference.beta,
            kto_chosen_weight=cfg.preference.kto_desirable_weight,
            kto_rejected_weight=cfg.preference.kto_undesirable_weight,
        )
    if cfg.preference.reference == "precompute" and obj in ("dpo", "kto"):
        notes.append("preference.reference = 'precompute' has no counterpart (reference runs live)")
    out["template"] = lf_template_name(cfg, facts)
    system = system_prompt_for(cfg, facts)
    if system is not None:
        out["default_system"] = system  # "" also clears a named template's own default
    elif out["template"] != "chatml":
        notes.append(
            "the model's chat template was not read here: if it has a built-in system "
            f"prompt, set default_system to it (template '{out['template']}' may bring its own)"
        )
    out.update(dataset=DATASET_NAME, dataset_dir=data_dir)
    if facts.eval_rows:
        out.update(eval_dataset=EVAL_DATASET_NAME, do_eval=True)
    out.update(output_dir=output_dir, plot_loss=True)
    out.update(common_keys(cfg, "llamafactory", facts, notes))
    if obj == "sft":
        # TRL packs padding-free (examples do not attend to each other): neat_packing.
        out["packing"] = cfg.train.packing
        if cfg.train.packing and not text_sft:
            out["neat_packing"] = True
        if cfg.train.packing:
            notes.append(PACKING_NOTE)
    _lf_warmup(cfg, facts, out)
    _lf_precision(cfg, facts, out, notes)
    out["report_to"] = cfg.train.report_to
    if facts.eval_rows:
        out["per_device_eval_batch_size"] = batch_size(cfg)
        if cfg.train.eval_steps > 0:
            out.update(eval_strategy="steps", eval_steps=cfg.train.eval_steps)
    return out


def _lf_warmup(cfg: RunConfig, facts: RunFacts, out: dict[str, Any]) -> None:
    steps = warmup_steps(cfg, facts)
    if steps is not None:
        out["warmup_steps"] = steps
    else:
        out["warmup_ratio"] = cfg.train.warmup_ratio


def _lf_precision(cfg: RunConfig, facts: RunFacts, out: dict[str, Any], notes: list[str]) -> None:
    p = trained_precision(cfg, facts.precision)
    if p is None:
        # LLaMA-Factory has no automatic choice (booleans only); bf16 is what "auto"
        # picks on the GPUs a hand-off is for (Ampere or newer).
        p = "bf16"
        notes.append(
            "train.precision = 'auto' and the target machine is unknown: bf16 is written "
            "(what auto picks on an Ampere-or-newer GPU); on an older GPU set bf16: false, fp16: true"
        )
    out.update(bf16=p == "bf16", fp16=p == "fp16")
    if p == "fp32":
        notes.append(
            "fp32: LLaMA-Factory still loads a LoRA base model in bf16/fp16 where the GPU has it"
        )


def llamafactory_dataset_info(
    cfg: RunConfig, file_name: str, eval_file_name: str | None = None, *, text: bool = False
) -> dict[str, Any]:
    """The `dataset_info.json` entries describing our exported JSONL files to LLaMA-Factory."""
    obj = cfg.method.objective
    if text:
        entry: dict[str, Any] = {"formatting": "alpaca", "columns": {"prompt": "text"}}
    else:
        tags = {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
            "system_tag": "system",
        }
        entry = {"formatting": "sharegpt"}
        if obj in PAIRED_OBJECTIVES:
            entry["ranking"] = True
            columns = {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}
        elif obj == "kto":
            columns = {"messages": "messages", "kto_tag": "label"}
        else:
            columns = {"messages": "messages"}
        entry.update(columns=columns, tags=tags)
    info = {DATASET_NAME: {"file_name": file_name, **entry}}
    if eval_file_name:
        info[EVAL_DATASET_NAME] = {"file_name": eval_file_name, **entry}
    return info
