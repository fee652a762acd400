from __future__ import annotations

import json

import pytest
import yaml

from spark_tui.config import RunConfig
from spark_tui.core.method import precision, trainer_args
from spark_tui.core.review import handoff


def _cfg(**changes) -> RunConfig:
    cfg = RunConfig(name="h")
    for k, v in changes.items():
        cfg = cfg.with_value(k.replace("__", "."), v)
    return cfg


def test_sft_lora_maps_to_both_tools(tmp_path):
    cfg = _cfg(
        lora__r=8,
        lora__alpha=16,
        lora__target_modules="attention",
        train__max_steps=30,
        train__neftune_alpha=5.0,
        method__use_dora=True,
        data__max_length=1024,
    )
    rows = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    ]
    files = handoff.write_handoff(cfg, tmp_path, rows)
    lf = yaml.safe_load(files.llamafactory_yaml.read_text())
    assert lf["stage"] == "sft" and lf["finetuning_type"] == "lora"
    assert lf["lora_rank"] == 8 and lf["lora_alpha"] == 16 and lf["use_dora"] is True
    assert lf["lora_target"] == "q_proj,k_proj,v_proj,o_proj"
    assert lf["cutoff_len"] == 1024 and lf["max_steps"] == 30 and lf["neftune_noise_alpha"] == 5.0
    assert lf["model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert lf["dataset"] == handoff.DATASET_NAME and lf["template"] == "chatml"
    info = json.loads(files.llamafactory_dataset_info.read_text())
    assert info[handoff.DATASET_NAME]["columns"] == {"messages": "messages"}
    ax = yaml.safe_load(files.axolotl_yaml.read_text())
    assert ax["adapter"] == "lora" and ax["load_in_4bit"] is False and ax["peft_use_dora"] is True
    assert ax["lora_target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert ax["sequence_len"] == 1024 and ax["datasets"][0]["type"] == "chat_template"
    data = [json.loads(line) for line in files.data_file.read_text().splitlines()]
    assert data == rows


def test_qlora_all_linear_and_optimizer():
    cfg = _cfg(method__adapter="qlora", train__optimizer="paged_adamw_8bit")
    lf = handoff.llamafactory_config(cfg)
    assert lf["quantization_bit"] == 4 and lf["double_quantization"] is True
    # Its enum value: "bitsandbytes" builds no quantization.
    assert lf["quantization_method"] == "bnb"
    assert lf["lora_target"] == "all" and lf["optim"] == "paged_adamw_8bit"
    ax = handoff.axolotl_config(cfg, "d.jsonl")
    assert (
        ax["adapter"] == "qlora" and ax["load_in_4bit"] is True and ax["lora_target_linear"] is True
    )
    assert ax["optimizer"] == "paged_adamw_8bit"


def test_full_finetune_has_no_lora_keys():
    cfg = _cfg(method__adapter="full")
    lf = handoff.llamafactory_config(cfg)
    assert lf["finetuning_type"] == "full" and "lora_rank" not in lf
    assert "adapter" not in handoff.axolotl_config(cfg, "d.jsonl")


def test_preference_objectives_map(tmp_path):
    # Both tools take SimPO's γ as the absolute margin (γ = ratio × β), with SimPO's own β.
    simpo = _cfg(
        method__objective="simpo",
        preference__simpo_gamma_beta_ratio=0.4,
        preference__simpo_beta=2.5,
        preference__beta=0.1,
    )
    lf = handoff.llamafactory_config(simpo)
    assert (lf["stage"], lf["pref_loss"], lf["pref_beta"]) == ("dpo", "simpo", 2.5)
    assert lf["simpo_gamma"] == pytest.approx(1.0)
    ax = handoff.axolotl_config(simpo, "d.jsonl")
    assert ax["rl"] == "simpo" and ax["cpo_alpha"] == 0.0 and ax["rl_beta"] == 2.5
    assert ax["simpo_gamma"] == pytest.approx(1.0)
    # ... exactly what the trainer is given.
    cpu = precision.Hardware(device="cpu", name="CPU", bf16=False, fp16=False)
    kw = trainer_args.trainer_kwargs(
        simpo, output_dir=tmp_path, hw=cpu, precision="fp32", has_eval=False, notes=[]
    )
    assert (kw["beta"], kw["simpo_gamma"]) == (lf["pref_beta"], lf["simpo_gamma"])
    orpo = _cfg(method__objective="orpo", preference__orpo_lambda=0.2)
    assert handoff.llamafactory_config(orpo)["pref_beta"] == 0.2
    assert handoff.axolotl_config(orpo, "d.jsonl")["orpo_alpha"] == 0.2
    kto = _cfg(method__objective="kto", preference__kto_undesirable_weight=1.5)
    lf = handoff.llamafactory_config(kto)
    assert lf["stage"] == "kto" and lf["kto_rejected_weight"] == 1.5
    assert handoff.axolotl_config(kto, "d.jsonl")["kto_undesirable_weight"] == 1.5
    assert handoff.llamafactory_config(_cfg(method__objective="reward"))["stage"] == "rm"


def test_preference_rows_converted(tmp_path):
    cfg = _cfg(method__objective="dpo")
    rows = [
        {
            "prompt": [{"role": "user", "content": "q"}],
            "chosen": [{"role": "assistant", "content": "good"}],
            "rejected": [{"role": "assistant", "content": "bad"}],
        }
    ]
    files = handoff.write_handoff(cfg, tmp_path, rows)
    row = json.loads(files.data_file.read_text())
    assert row == {
        "conversations": [{"role": "user", "content": "q"}],
        "chosen": {"role": "assistant", "content": "good"},
        "rejected": {"role": "assistant", "content": "bad"},
    }
    info = json.loads(files.llamafactory_dataset_info.read_text())[handoff.DATASET_NAME]
    assert info["ranking"] is True
    kto = handoff.handoff_rows(
        _cfg(method__objective="kto"), [{"prompt": "q", "completion": "a", "label": False}]
    )
    assert kto == [
        {
            "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
            "label": False,
        }
    ]


def test_cli_handoff_for_a_run(spark_home, capsys):
    from spark_tui.cli import main
    from spark_tui.core.train.runs import create_run

    run = create_run(RunConfig(name="cli"))
    assert main(["handoff", run.id]) == 0
    out = capsys.readouterr().out
    assert "llamafactory.yaml" in out and "axolotl.yaml" in out
    assert (run.path / "handoff" / "axolotl.yaml").exists()


# ---- issue 13 point 9: the hand-off means the same in the real tools ----------------------

_CHAT = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}]
_PAIR = [
    {
        "prompt": [{"role": "user", "content": "q"}],
        "chosen": [{"role": "assistant", "content": "good"}],
        "rejected": [{"role": "assistant", "content": "bad"}],
    }
]
_KTO = [
    {
        "prompt": [{"role": "user", "content": "q"}],
        "completion": [{"role": "assistant", "content": "a"}],
        "label": True,
    }
]


class _TemplateTokenizer:
    """Just enough of a tokenizer to render a chat template (jinja, as transformers does)."""

    def __init__(self, template: str) -> None:
        self.chat_template = template

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False, **_kw):
        import jinja2

        env = jinja2.Environment()
        return env.from_string(self.chat_template).render(
            messages=messages, add_generation_prompt=add_generation_prompt, bos_token="<s>"
        )


def _written(files):
    lf = yaml.safe_load(files.llamafactory_yaml.read_text())
    ax = yaml.safe_load(files.axolotl_yaml.read_text())
    return lf, ax


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_precision_is_what_the_run_trained_in(tmp_path):
    # A CPU run resolves "auto" to fp32: neither tool may be told bf16.
    files = handoff.write_handoff(_cfg(), tmp_path / "cpu", _CHAT, precision="fp32")
    lf, ax = _written(files)
    assert (lf["bf16"], lf["fp16"]) == (False, False)
    assert (ax["bf16"], ax["fp16"]) == (False, False)
    lf, ax = _written(handoff.write_handoff(_cfg(), tmp_path / "t4", _CHAT, precision="fp16"))
    assert (lf["bf16"], lf["fp16"], ax["bf16"], ax["fp16"]) == (False, True, False, True)
    # Unknown machine: Axolotl decides itself; LLaMA-Factory has no "auto" and says so.
    files = handoff.write_handoff(_cfg(), tmp_path / "unknown", _CHAT)
    lf, ax = _written(files)
    assert ax["bf16"] == "auto" and "fp16" not in ax
    assert lf["bf16"] is True and "precision = 'auto'" in files.llamafactory_yaml.read_text()
    # An explicit setting is what trains, machine or not.
    lf, ax = _written(handoff.write_handoff(_cfg(train__precision="fp32"), tmp_path / "x", _CHAT))
    assert (lf["bf16"], ax["bf16"]) == (False, False)


def test_run_handoff_uses_the_runs_precision_and_splits(spark_home):
    from spark_tui.core.data.output import build_dataset_dict
    from spark_tui.core.train.runs import create_run

    run = create_run(RunConfig(name="split"))
    val = [{"messages": [{"role": "user", "content": "v"}, {"role": "assistant", "content": "w"}]}]
    build_dataset_dict(_CHAT, val, "messages").save_to_disk(str(run.data_dir))
    run.write_status(precision="fp32")
    files = handoff.write_run_handoff(run.path)
    lf, ax = _written(files)
    assert (lf["bf16"], ax["bf16"]) == (False, False)
    assert [r["messages"][-1]["content"] for r in _jsonl(files.data_file)] == ["yo"]
    assert [r["messages"][-1]["content"] for r in _jsonl(files.eval_file)] == ["w"]


def test_validation_split_is_kept_not_merged_and_resplit(tmp_path):
    val = [{"messages": [{"role": "user", "content": "v"}, {"role": "assistant", "content": "w"}]}]
    cfg = _cfg(data__val_fraction=0.2)
    files = handoff.write_handoff(cfg, tmp_path, _CHAT, eval_rows=val)
    lf, ax = _written(files)
    assert "val_size" not in lf and lf["eval_dataset"] == handoff.EVAL_DATASET_NAME
    assert lf["do_eval"] is True
    info = json.loads(files.llamafactory_dataset_info.read_text())
    assert info[handoff.EVAL_DATASET_NAME]["file_name"] == files.eval_file.name
    assert info[handoff.DATASET_NAME]["columns"] == info[handoff.EVAL_DATASET_NAME]["columns"]
    assert _jsonl(files.data_file) == _CHAT and _jsonl(files.eval_file) == val
    assert ax["val_set_size"] == 0.0
    assert ax["test_datasets"][0]["path"] == str(files.axolotl_eval_file)
    assert ax["test_datasets"][0]["type"] == ax["datasets"][0]["type"]
    assert _jsonl(files.axolotl_eval_file) == val
    # No validation rows: no evaluation set at all (and still no re-split).
    lf, ax = _written(handoff.write_handoff(cfg, tmp_path / "none", _CHAT, eval_rows=[]))
    assert "eval_dataset" not in lf and "val_size" not in lf
    assert "test_datasets" not in ax and ax["val_set_size"] == 0.0


def test_template_default_system_prompt_is_carried(tmp_path):
    from spark_tui.core.data.templates import CHATML_TEMPLATE, SMOLLM2_TEMPLATE
    from spark_tui.core.review.handoff_rows import default_system_prompt

    smol = _TemplateTokenizer(SMOLLM2_TEMPLATE)
    default = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    assert default_system_prompt(smol) == default
    assert default_system_prompt(_TemplateTokenizer(CHATML_TEMPLATE)) == ""
    files = handoff.write_handoff(_cfg(), tmp_path, _CHAT, tokenizer=smol)
    lf, _ax = _written(files)
    assert lf["template"] == "chatml" and lf["default_system"] == default
    # The rows say it too, so tools rendering with their own template copy train the same text.
    assert _jsonl(files.data_file)[0]["messages"][0] == {"role": "system", "content": default}
    assert _jsonl(files.axolotl_data_file)[0]["messages"][0]["content"] == default
    # A template without one clears a named LLaMA-Factory template's own default ...
    lf, _ax = _written(
        handoff.write_handoff(
            _cfg(), tmp_path / "c", _CHAT, tokenizer=_TemplateTokenizer(CHATML_TEMPLATE)
        )
    )
    assert lf["default_system"] == ""
    # ... and the run's own system prompt is the default where the template has none.
    lf, _ax = _written(
        handoff.write_handoff(
            _cfg(data__system_prompt="Be brief.", model__chat_template="chatml"),
            tmp_path / "s",
            _CHAT,
        )
    )
    assert lf["default_system"] == "Be brief."


def test_axolotl_gets_no_silently_ignored_system_message(tmp_path):
    # default_system_message only rewrites a literal inside Axolotl's ChatML template.
    _lf, ax = _written(
        handoff.write_handoff(_cfg(data__system_prompt="Be brief."), tmp_path, _CHAT)
    )
    assert "default_system_message" not in ax


def test_simpo_warmup_is_in_steps_for_axolotl(tmp_path):
    cfg = _cfg(method__objective="simpo", train__max_steps=100, train__warmup_ratio=0.03)
    lf, ax = _written(handoff.write_handoff(cfg, tmp_path, _PAIR))
    assert "warmup_ratio" not in ax and ax["warmup_steps"] == 3
    assert lf["warmup_steps"] == 3 and "warmup_ratio" not in lf
    # From epochs: ⌈ratio × steps⌉ over the prepared rows, as transformers computes it.
    rows = _PAIR * 40  # 10 batches of 4 per epoch, 3 epochs
    _lf, ax = _written(handoff.write_handoff(_cfg(method__objective="simpo"), tmp_path / "e", rows))
    assert ax["warmup_steps"] == 1  # ⌈0.03 × 30⌉
    # Unknown step count: no warmup key Axolotl would refuse, and a note saying what to set.
    files = handoff.write_handoff(_cfg(method__objective="simpo"), tmp_path / "u")
    _lf, ax = _written(files)
    assert "warmup_ratio" not in ax and "warmup_steps" not in ax
    assert (
        "# NOTE: warmup: Axolotl's SimPO takes warmup_steps only" in files.axolotl_yaml.read_text()
    )
    _lf, ax = _written(handoff.write_handoff(_cfg(train__scheduler="constant"), tmp_path / "k"))
    assert ax["warmup_steps"] == 0


def test_kto_axolotl_config_and_rows(tmp_path):
    cfg = _cfg(method__objective="kto", train__packing=True, train__micro_batch_size=1)
    files = handoff.write_handoff(cfg, tmp_path, _KTO)
    lf, ax = _written(files)
    assert ax["remove_unused_columns"] is False and "sample_packing" not in ax
    assert ax["datasets"][0]["type"] == "chatml.argilla_chat"
    assert _jsonl(files.axolotl_data_file) == [
        {
            "completion": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
            "label": True,
        }
    ]
    # The trainer raises KTO's batch to 2; so does the hand-off.
    assert ax["micro_batch_size"] == 2 and lf["per_device_train_batch_size"] == 2
    assert "packing" not in lf
    llama = handoff.write_handoff(
        _cfg(method__objective="kto", model__chat_template="llama3"), tmp_path / "l", _KTO
    )
    assert _written(llama)[1]["datasets"][0]["type"] == "llama3.argilla_chat"


def test_orpo_and_reward_rows_in_axolotl_layouts(tmp_path):
    sys_pair = [{**_PAIR[0], "prompt": [{"role": "system", "content": "S"}, *_PAIR[0]["prompt"]]}]
    files = handoff.write_handoff(_cfg(method__objective="orpo"), tmp_path / "o", sys_pair)
    _lf, ax = _written(files)
    assert ax["datasets"][0]["type"] == "chat_template.argilla"
    assert _jsonl(files.axolotl_data_file) == [
        {
            "system": "S",
            "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "good"}],
            "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "bad"}],
        }
    ]
    files = handoff.write_handoff(_cfg(method__objective="reward"), tmp_path / "r", sys_pair)
    _lf, ax = _written(files)
    assert ax["datasets"][0]["type"] == "bradley_terry.chat_template"
    assert _jsonl(files.axolotl_data_file) == [
        {"system": "S", "input": "q", "chosen": "good", "rejected": "bad"}
    ]
    # LLaMA-Factory reads the same ShareGPT ranking rows for both.
    assert _jsonl(files.data_file)[0]["conversations"][0] == {"role": "system", "content": "S"}


def test_dpo_dataset_keys_are_the_ones_axolotl_keeps(tmp_path):
    # Axolotl's DPODataset schema drops other keys silently (roles, message_property_mappings).
    _lf, ax = _written(handoff.write_handoff(_cfg(method__objective="dpo"), tmp_path, _PAIR))
    assert set(ax["datasets"][0]) <= {
        "path",
        "split",
        "type",
        "data_files",
        "revision",
        "field_messages",
        "field_chosen",
        "field_rejected",
    }
    assert ax["datasets"][0]["type"] == "chat_template.default"


def test_other_settings_reach_both_tools(tmp_path):
    cfg = _cfg(model__id="org/model", model__revision="abc123", train__packing=True)
    files = handoff.write_handoff(cfg, tmp_path, _CHAT)
    lf, ax = _written(files)
    assert "# NOTE: train.packing: spark-tui packs only where FlashAttention runs" in (
        files.axolotl_yaml.read_text()
    )
    assert lf["model_revision"] == "abc123" and ax["revision_of_model"] == "abc123"
    # TRL packs padding-free: examples never attend to each other (LLaMA-Factory's neat_packing).
    assert lf["packing"] is True and lf["neat_packing"] is True and ax["sample_packing"] is True
    assert ax["excess_length_strategy"] == "truncate"  # TRL truncates; Axolotl would drop
    assert ax["chat_template"] == "tokenizer_default_fallback_chatml"  # the trainer's "auto"
    sft = ax["datasets"][0]
    assert sft["roles_to_train"] == ["assistant"] and sft["train_on_eos"] == "turn"
    # Plain-text rows train on every token: LLaMA-Factory's pt stage, Axolotl's completion type.
    files = handoff.write_handoff(_cfg(), tmp_path / "t", [{"text": "plain words"}])
    lf, ax = _written(files)
    assert lf["stage"] == "pt" and lf["packing"] is False
    assert json.loads(files.llamafactory_dataset_info.read_text())[handoff.DATASET_NAME][
        "columns"
    ] == {"prompt": "text"}
    assert ax["datasets"][0] == {
        "path": str(files.axolotl_data_file),
        "type": "completion",
        "field": "text",
    }
    assert _jsonl(files.data_file) == [{"text": "plain words"}]
    # Adapters neither tool has are named, not silently turned into LoRA.
    files = handoff.write_handoff(_cfg(method__adapter="ia3"), tmp_path / "i", _CHAT)
    assert "'ia3' has no counterpart" in files.llamafactory_yaml.read_text()
    assert "'ia3' has no counterpart" in files.axolotl_yaml.read_text()
