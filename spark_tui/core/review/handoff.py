"""Hand a run over to other tools: an equivalent LLaMA-Factory YAML and Axolotl YAML.

People outgrow one box: the same run should be one command away on a cluster
with LLaMA-Factory (`llamafactory-cli train llamafactory.yaml`) or Axolotl
(`axolotl train axolotl.yaml`).  The mapping below follows each tool's
documented config keys; values that have no counterpart are left out and listed
in a comment at the top of the file so nothing is dropped silently.

The prepared data is written next to the YAML files as JSONL in the layout each
tool reads (OpenAI-style `messages` for SFT; `prompt`/`chosen`/`rejected` for
pairs; `messages` + `label` for KTO), with a LLaMA-Factory `dataset_info.json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from spark_tui.config import PAIRED_OBJECTIVES, RunConfig
from spark_tui.core.base.atomic import atomic_write_text
from spark_tui.core.method.peft_config import ATTENTION_NAMES
from spark_tui.core.method.trainer_args import OPTIMIZER_NAMES
from spark_tui.core.model.resolve import DEFAULT_HUB_ID, DEFAULT_MODEL_ID

DATASET_NAME = "spark_tui_data"

# LLaMA-Factory: stage + pref_loss per objective.
_LF_STAGE = {
    "sft": ("sft", None),
    "dpo": ("dpo", "sigmoid"),
    "simpo": ("dpo", "simpo"),
    "orpo": ("dpo", "orpo"),
    "kto": ("kto", None),
    "reward": ("rm", None),
}
_LF_TEMPLATE = {"chatml": "chatml", "llama3": "llama3"}

# The run.toml settings both tools take: (setting, LLaMA-Factory key, Axolotl key); None where
# that tool gets no such key.
_SHARED_KEYS: tuple[tuple[str, str | None, str | None], ...] = (
    ("data.max_length", "cutoff_len", "sequence_len"),
    ("data.val_fraction", "val_size", "val_set_size"),
    ("train.packing", "packing", "sample_packing"),
    ("train.micro_batch_size", "per_device_train_batch_size", "micro_batch_size"),
    ("train.grad_accum", "gradient_accumulation_steps", "gradient_accumulation_steps"),
    ("train.epochs", "num_train_epochs", "num_epochs"),
    ("train.optimizer", "optim", "optimizer"),  # in transformers' names
    ("train.scheduler", "lr_scheduler_type", "lr_scheduler"),
    ("train.learning_rate", "learning_rate", "learning_rate"),
    ("train.warmup_ratio", "warmup_ratio", "warmup_ratio"),
    ("train.gradient_checkpointing", None, "gradient_checkpointing"),
    ("train.logging_steps", "logging_steps", "logging_steps"),
    ("train.save_steps", "save_steps", "save_steps"),
    ("train.save_total_limit", "save_total_limit", "save_total_limit"),
    ("train.seed", "seed", "seed"),
    ("train.report_to", "report_to", None),
)


@dataclass
class HandoffFiles:
    llamafactory_yaml: Path
    llamafactory_dataset_info: Path
    axolotl_yaml: Path
    data_file: Path | None


def _base_model(cfg: RunConfig) -> str:
    # The bundled default is a local conversion of a public Hub model: other tools
    # on other machines should fetch the original.
    return DEFAULT_HUB_ID if cfg.model.id in ("", DEFAULT_MODEL_ID) else cfg.model.id


def _targets(cfg: RunConfig) -> list[str] | str:
    t = cfg.lora.target_modules.strip()
    if t == "all-linear":
        return "all"
    if t == "attention":
        return list(ATTENTION_NAMES[0])
    return [m.strip() for m in t.split(",") if m.strip()]


def _precision(cfg: RunConfig) -> dict[str, bool]:
    p = cfg.train.precision
    return {"bf16": p in ("bf16", "auto"), "fp16": p == "fp16"}


def _shared(cfg: RunConfig, tool: str) -> dict[str, Any]:
    """The `_SHARED_KEYS` settings under the names of `tool` ("llamafactory" or "axolotl"),
    then the precision flags."""
    out: dict[str, Any] = {}
    for setting, lf_name, axolotl_name in _SHARED_KEYS:
        name = lf_name if tool == "llamafactory" else axolotl_name
        if name is not None:
            value = cfg.get(setting)
            out[name] = OPTIMIZER_NAMES[value] if setting == "train.optimizer" else value
    return {**out, **_precision(cfg)}


def _limits(cfg: RunConfig) -> dict[str, Any]:
    """The step limit and NEFTune (the same keys in both tools), when set."""
    out: dict[str, Any] = {}
    if cfg.train.max_steps > 0:
        out["max_steps"] = cfg.train.max_steps
    if cfg.train.neftune_alpha > 0:
        out["neftune_noise_alpha"] = cfg.train.neftune_alpha
    return out


def llamafactory_config(
    cfg: RunConfig, data_dir: str = ".", output_dir: str = "saves"
) -> dict[str, Any]:
    """The LLaMA-Factory train config equivalent to `cfg`."""
    stage, pref_loss = _LF_STAGE[cfg.method.objective]
    adapter = cfg.method.adapter
    out: dict[str, Any] = {
        "model_name_or_path": _base_model(cfg),
        "trust_remote_code": cfg.model.trust_remote_code,
        "stage": stage,
        "do_train": True,
        "finetuning_type": "full" if adapter == "full" else "lora",
    }
    if adapter in ("lora", "qlora"):
        targets = _targets(cfg)
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
        out["pref_beta"] = cfg.preference.beta_for(cfg.method.objective)
        if cfg.method.objective == "simpo":
            # LLaMA-Factory's simpo_gamma is the absolute margin γ, as in TRL.
            out["simpo_gamma"] = cfg.preference.simpo_gamma
    if stage == "kto":
        out.update(
            pref_beta=cfg.preference.beta,
            kto_chosen_weight=cfg.preference.kto_desirable_weight,
            kto_rejected_weight=cfg.preference.kto_undesirable_weight,
        )
    template = _LF_TEMPLATE.get(cfg.model.chat_template)
    out.update(dataset=DATASET_NAME, dataset_dir=data_dir, output_dir=output_dir, plot_loss=True)
    out.update(_shared(cfg, "llamafactory"))
    out["disable_gradient_checkpointing"] = not cfg.train.gradient_checkpointing
    if template:
        out["template"] = template
    else:
        # LLaMA-Factory needs a template name; "default" would not match the model's.
        # Its docs map model families to names; leave a visible placeholder.
        out["template"] = _guess_lf_template(_base_model(cfg))
    out.update(_limits(cfg))
    if cfg.train.eval_steps > 0:
        out.update(
            eval_strategy="steps",
            eval_steps=cfg.train.eval_steps,
            per_device_eval_batch_size=cfg.train.micro_batch_size,
        )
    return out


def _guess_lf_template(model: str) -> str:
    m = model.lower()
    for needle, name in (
        ("llama-3", "llama3"),
        ("llama3", "llama3"),
        ("mistral", "mistral"),
        ("qwen", "qwen"),
        ("gemma", "gemma"),
        ("phi-3", "phi"),
        ("tinyllama", "zephyr"),
        ("smollm", "chatml"),
        ("llama-2", "llama2"),
    ):
        if needle in m:
            return name
    return "chatml"


def llamafactory_dataset_info(cfg: RunConfig, file_name: str) -> dict[str, Any]:
    """The `dataset_info.json` entry describing our exported JSONL to LLaMA-Factory."""
    obj = cfg.method.objective
    tags = {
        "role_tag": "role",
        "content_tag": "content",
        "user_tag": "user",
        "assistant_tag": "assistant",
        "system_tag": "system",
    }
    entry: dict[str, Any] = {"file_name": file_name, "formatting": "sharegpt"}
    if obj in PAIRED_OBJECTIVES:
        entry["ranking"] = True
        columns = {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}
    elif obj == "kto":
        columns = {"messages": "messages", "kto_tag": "label"}
    else:
        columns = {"messages": "messages"}
    entry.update(columns=columns, tags=tags)
    return {DATASET_NAME: entry}


def _axolotl_dataset(
    data_file: str, kind: str, messages: str, *, chat: bool = True, **fields: str
) -> dict[str, Any]:
    """One Axolotl `datasets` entry; `chat` adds the role/content mapping of chat templates."""
    ds: dict[str, Any] = {"path": data_file, "type": kind, "field_messages": messages, **fields}
    if chat:
        ds["message_property_mappings"] = {"role": "role", "content": "content"}
        ds["roles"] = {"user": ["user"], "assistant": ["assistant"], "system": ["system"]}
    return ds


def axolotl_config(cfg: RunConfig, data_file: str, output_dir: str = "./outputs") -> dict[str, Any]:
    """The Axolotl config equivalent to `cfg`."""
    adapter = cfg.method.adapter
    obj = cfg.method.objective
    out: dict[str, Any] = {
        "base_model": _base_model(cfg),
        "trust_remote_code": cfg.model.trust_remote_code,
    }
    if adapter in ("lora", "qlora"):
        out["adapter"] = adapter
        out["load_in_4bit"] = adapter == "qlora"
        out.update(lora_r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout)
        targets = _targets(cfg)
        if targets == "all":
            out["lora_target_linear"] = True
        else:
            out["lora_target_modules"] = targets
        if cfg.method.use_dora:
            out["peft_use_dora"] = True
        if cfg.method.use_rslora:
            out["peft_use_rslora"] = True
    pair_fields = {"field_chosen": "chosen", "field_rejected": "rejected"}
    if obj in ("dpo", "simpo", "orpo"):
        out["rl"] = obj
        ds = _axolotl_dataset(data_file, "chat_template.default", "conversations", **pair_fields)
        if obj == "orpo":
            out["orpo_alpha"] = cfg.preference.orpo_lambda
        else:
            out["rl_beta"] = cfg.preference.beta_for(obj)
        if obj == "simpo":
            out["cpo_alpha"] = 0.0
            out["simpo_gamma"] = cfg.preference.simpo_gamma  # absolute γ (TRL's CPOConfig)
    elif obj == "kto":
        out["rl"] = "kto"
        out["rl_beta"] = cfg.preference.beta
        out["kto_desirable_weight"] = cfg.preference.kto_desirable_weight
        out["kto_undesirable_weight"] = cfg.preference.kto_undesirable_weight
        ds = _axolotl_dataset(data_file, "chat_template.default", "messages", field_label="label")
    elif obj == "reward":
        out["reward_model"] = True
        ds = _axolotl_dataset(
            data_file, "bradley_terry.chat_template", "conversations", chat=False, **pair_fields
        )
    else:
        ds = _axolotl_dataset(data_file, "chat_template", "messages")
    out["datasets"] = [ds]
    out["chat_template"] = {"auto": "tokenizer_default"}.get(
        cfg.model.chat_template, cfg.model.chat_template
    )
    out.update(dataset_prepared_path="last_run_prepared", output_dir=output_dir)
    out.update(_shared(cfg, "axolotl"))
    out.update(_limits(cfg))
    if cfg.train.eval_steps > 0:
        out["eval_steps"] = cfg.train.eval_steps
    if cfg.data.system_prompt:
        out["default_system_message"] = cfg.data.system_prompt
    return out


def _to_messages(value: Any) -> list[dict[str, str]]:
    if isinstance(value, list):
        return [{"role": m["role"], "content": m["content"]} for m in value]
    return [{"role": "user", "content": str(value)}]


def _answer(value: Any) -> dict[str, str]:
    if isinstance(value, list):
        value = value[-1]["content"] if value else ""
    return {"role": "assistant", "content": str(value)}


def handoff_rows(cfg: RunConfig, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Convert prepared (TRL-layout) rows into the layout both tools read."""
    obj = cfg.method.objective
    out = []
    for r in rows:
        if obj in PAIRED_OBJECTIVES:
            out.append(
                {
                    "conversations": _to_messages(r["prompt"]),
                    "chosen": _answer(r["chosen"]),
                    "rejected": _answer(r["rejected"]),
                }
            )
        elif obj == "kto":
            out.append(
                {
                    "messages": _to_messages(r["prompt"]) + [_answer(r["completion"])],
                    "label": bool(r["label"]),
                }
            )
        else:
            out.append({"messages": _to_messages(r["messages"])})
    return out


def _dump_yaml(data: dict[str, Any], tool: str, command: str) -> str:
    header = (
        f"# {tool} config written by spark-tui, equivalent to this run's run.toml.\n"
        f"# Run it with: {command}\n"
    )
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def write_handoff(
    cfg: RunConfig, out_dir: Path, rows: list[dict[str, Any]] | None = None
) -> HandoffFiles:
    """Write llamafactory.yaml, dataset_info.json, axolotl.yaml (and data.jsonl when rows are given)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_name = "data.jsonl"
    data_file: Path | None = None
    if rows is not None:
        data_file = out_dir / data_name
        atomic_write_text(
            data_file,
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in handoff_rows(cfg, rows)),
        )
    lf = out_dir / "llamafactory.yaml"
    info = out_dir / "dataset_info.json"
    ax = out_dir / "axolotl.yaml"
    atomic_write_text(
        lf,
        _dump_yaml(
            llamafactory_config(cfg, data_dir=str(out_dir)),
            "LLaMA-Factory",
            f"llamafactory-cli train {lf}",
        ),
    )
    atomic_write_text(info, json.dumps(llamafactory_dataset_info(cfg, data_name), indent=2) + "\n")
    atomic_write_text(
        ax,
        _dump_yaml(axolotl_config(cfg, str(out_dir / data_name)), "Axolotl", f"axolotl train {ax}"),
    )
    return HandoffFiles(lf, info, ax, data_file)


def write_run_handoff(run_path: Path) -> HandoffFiles:
    """Hand-off files for a run folder, using its prepared training split when present."""
    from spark_tui.core.train.runs import Run

    run = Run(Path(run_path))
    cfg = run.config()
    rows = None
    if (run.data_dir / "dataset_dict.json").exists():
        from datasets import load_from_disk

        rows = load_from_disk(str(run.data_dir))["train"].to_list()
    return write_handoff(cfg, run.path / "handoff", rows)
