"""accelerate.yaml as accelerate itself reads it: DDP and FSDP wrapped by the decoder layer."""

from __future__ import annotations

import json

import pytest

from spark_tui.core.train.accelerate_config import (
    LaunchPlan,
    accelerate_config,
    decoder_layer_classes,
    launch_command,
    write_config,
)


def _load(path):
    from accelerate.commands.config.config_args import load_config_from_file

    return load_config_from_file(str(path))


def test_fsdp_config_loads_with_accelerate_and_names_the_decoder_layer(tmp_path, default_model_dir):
    model_config = json.loads((default_model_dir / "config.json").read_text())
    layers = decoder_layer_classes(model_config)
    assert layers == ["LlamaDecoderLayer"]
    plan = LaunchPlan("fsdp", processes_per_machine=1, machines=2, main_address="192.168.100.1")
    for rank in (0, 1):
        path = write_config(tmp_path / f"rank{rank}.yaml", accelerate_config(plan, rank, layers))
        loaded = _load(path)
        assert loaded.distributed_type.value == "FSDP"
        assert (loaded.num_machines, loaded.num_processes, loaded.machine_rank) == (2, 2, rank)
        assert loaded.main_process_ip == "192.168.100.1" and loaded.main_process_port == 29500
        fsdp = loaded.fsdp_config
        assert fsdp["fsdp_transformer_layer_cls_to_wrap"] == "LlamaDecoderLayer"
        assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
        assert fsdp["fsdp_state_dict_type"] == "SHARDED_STATE_DICT"
        assert fsdp["fsdp_cpu_ram_efficient_loading"] is True


def test_ddp_on_cpus_starts_through_the_elastic_launcher_without_mixed_precision(tmp_path):
    # MULTI_CPU / use_cpu would make `accelerate launch` start one process (or mpirun).
    plan = LaunchPlan("ddp", processes_per_machine=2, cpu=True)
    loaded = _load(write_config(tmp_path / "a.yaml", accelerate_config(plan)))
    assert loaded.distributed_type.value == "MULTI_GPU" and loaded.use_cpu is False
    assert loaded.num_processes == 2 and str(loaded.mixed_precision) in ("no", "PrecisionType.NO")


def test_bad_plans_are_refused_with_what_to_change():
    with pytest.raises(ValueError, match="200 GbE"):
        accelerate_config(LaunchPlan("ddp", machines=2))
    with pytest.raises(ValueError, match="machine rank"):
        accelerate_config(LaunchPlan("ddp", machines=2, main_address="10.0.0.1"), machine_rank=2)
    with pytest.raises(ValueError, match="decoder layer"):
        accelerate_config(LaunchPlan("fsdp"))
    with pytest.raises(ValueError, match="model_type"):
        decoder_layer_classes({})


def test_launch_command_is_an_argument_list(tmp_path):
    cmd = launch_command(tmp_path / "accelerate.yaml", tmp_path / "run", 1, resume=True)
    assert cmd[:2] == ["accelerate", "launch"] and "--machine_rank" in cmd
    assert cmd[cmd.index("--machine_rank") + 1] == "1" and cmd[-1] == "--resume"
    assert "spark_tui.core.train.entry" in cmd
