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
    cfg = _cfg(lora__r=8, lora__alpha=16, lora__target_modules="attention", train__max_steps=30,
               train__neftune_alpha=5.0, method__use_dora=True, data__max_length=1024)
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}]
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
    assert lf["quantization_method"] == "bnb"  # its enum value; "bitsandbytes" builds no quantization
    assert lf["lora_target"] == "all" and lf["optim"] == "paged_adamw_8bit"
    ax = handoff.axolotl_config(cfg, "d.jsonl")
    assert ax["adapter"] == "qlora" and ax["load_in_4bit"] is True and ax["lora_target_linear"] is True
    assert ax["optimizer"] == "paged_adamw_8bit"


def test_full_finetune_has_no_lora_keys():
    cfg = _cfg(method__adapter="full")
    lf = handoff.llamafactory_config(cfg)
    assert lf["finetuning_type"] == "full" and "lora_rank" not in lf
    assert "adapter" not in handoff.axolotl_config(cfg, "d.jsonl")


def test_preference_objectives_map(tmp_path):
    # Both tools take SimPO's γ as the absolute margin (γ = ratio × β), with SimPO's own β.
    simpo = _cfg(method__objective="simpo", preference__simpo_gamma_beta_ratio=0.4,
                 preference__simpo_beta=2.5, preference__beta=0.1)
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
    rows = [{"prompt": [{"role": "user", "content": "q"}],
             "chosen": [{"role": "assistant", "content": "good"}],
             "rejected": [{"role": "assistant", "content": "bad"}]}]
    files = handoff.write_handoff(cfg, tmp_path, rows)
    row = json.loads(files.data_file.read_text())
    assert row == {"conversations": [{"role": "user", "content": "q"}],
                   "chosen": {"role": "assistant", "content": "good"},
                   "rejected": {"role": "assistant", "content": "bad"}}
    info = json.loads(files.llamafactory_dataset_info.read_text())[handoff.DATASET_NAME]
    assert info["ranking"] is True
    kto = handoff.handoff_rows(_cfg(method__objective="kto"),
                               [{"prompt": "q", "completion": "a", "label": False}])
    assert kto == [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                    "label": False}]


def test_cli_handoff_for_a_run(spark_home, capsys):
    from spark_tui.cli import main
    from spark_tui.core.train.runs import create_run

    run = create_run(RunConfig(name="cli"))
    assert main(["handoff", run.id]) == 0
    out = capsys.readouterr().out
    assert "llamafactory.yaml" in out and "axolotl.yaml" in out
    assert (run.path / "handoff" / "axolotl.yaml").exists()
