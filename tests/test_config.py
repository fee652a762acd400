from __future__ import annotations

import pytest

from spark_tui.config import ConfigError, RunConfig, known_keys


def test_default_config_round_trips_exactly():
    cfg = RunConfig()
    again = RunConfig.from_toml(cfg.to_toml())
    assert again == cfg
    assert again.to_toml() == cfg.to_toml()


def test_changed_config_round_trips(tmp_path):
    cfg = RunConfig(name="x")
    cfg.method.objective = "dpo"
    cfg.method.use_dora = True
    cfg.lora.r = 8
    cfg.train.learning_rate = 5e-5
    cfg.data.column_map = {"question": "instruction", "answer": "output"}
    cfg.data.drop = ["exact_duplicates"]
    path = tmp_path / "run.toml"
    cfg.save(path)
    assert RunConfig.load(path) == cfg


def test_unknown_key_names_key_and_allowed():
    with pytest.raises(ConfigError) as ei:
        RunConfig.from_toml("[lora]\nrank = 8\n")
    msg = str(ei.value)
    assert "lora.rank" in msg and "alpha" in msg and "r" in msg


def test_unknown_section():
    with pytest.raises(ConfigError, match="unknown key 'trainer'"):
        RunConfig.from_dict({"trainer": {}})


def test_bad_choice_lists_allowed_values():
    with pytest.raises(ConfigError) as ei:
        RunConfig.from_toml('[method]\nobjective = "ppo"\n')
    msg = str(ei.value)
    assert "method.objective" in msg and "'dpo'" in msg and "'kto'" in msg


def test_bad_type_and_range():
    with pytest.raises(ConfigError, match="train.micro_batch_size.*integer"):
        RunConfig.from_toml('[train]\nmicro_batch_size = "four"\n')
    with pytest.raises(ConfigError, match="lora.dropout.*out of range"):
        RunConfig.from_toml("[lora]\ndropout = 1.5\n")
    with pytest.raises(ConfigError, match="max_steps"):
        RunConfig.from_toml("[train]\nmax_steps = 0\n")


def test_bad_toml_names_file(tmp_path):
    p = tmp_path / "broken.toml"
    p.write_text("[train\n")
    with pytest.raises(ConfigError, match="broken.toml"):
        RunConfig.load(p)
    with pytest.raises(ConfigError, match="no such config file"):
        RunConfig.load(tmp_path / "missing.toml")


def test_int_accepted_for_float():
    cfg = RunConfig.from_toml("[train]\nlearning_rate = 1\n")
    assert cfg.train.learning_rate == 1.0 and isinstance(cfg.train.learning_rate, float)


def test_dotted_get_and_with_value():
    cfg = RunConfig()
    assert cfg.get("lora.r") == 16
    cfg2 = cfg.with_value("lora.r", 4)
    assert cfg2.lora.r == 4 and cfg.lora.r == 16
    with pytest.raises(ConfigError, match="unknown setting"):
        cfg.with_value("lora.rank", 4)
    with pytest.raises(ConfigError):
        cfg.with_value("method.adapter", "bogus")
    assert "lora.r" in known_keys() and "train.neftune_alpha" in known_keys()


def test_secrets_never_written():
    data = RunConfig().to_dict()
    data["model"]["token"] = "hf_secret"
    with pytest.raises(ConfigError):
        RunConfig.from_dict(data)
    from spark_tui.config import _check_no_secrets

    with pytest.raises(ConfigError, match="secret"):
        _check_no_secrets({"model": {"hf_token": "x"}})


def test_simpo_defaults_are_its_own_and_gamma_is_one_product():
    pref = RunConfig().preference
    assert (pref.beta, pref.simpo_beta, pref.simpo_gamma_beta_ratio) == (0.1, 2.0, 0.5)
    assert pref.simpo_gamma == pytest.approx(1.0)
    assert [pref.beta_for(o) for o in ("dpo", "kto", "simpo", "orpo")] == [0.1, 0.1, 2.0, 0.1]


def test_old_run_toml_with_simpo_gamma_keeps_training_the_same():
    # Before SimPO had its own β, simpo_gamma held the γ/β ratio and SimPO used preference.beta.
    old = RunConfig.from_toml(
        '[method]\nobjective = "simpo"\n[preference]\nbeta = 0.3\nsimpo_gamma = 0.6\n'
    )
    assert (old.preference.simpo_beta, old.preference.simpo_gamma_beta_ratio) == (0.3, 0.6)
    assert old.preference.simpo_gamma == pytest.approx(0.18)
    dpo = RunConfig.from_toml('[preference]\nsimpo_gamma = 0.6\n')
    assert (dpo.preference.simpo_beta, dpo.preference.simpo_gamma_beta_ratio) == (2.0, 0.6)


def test_a_column_named_token_is_not_a_secret():
    cfg = RunConfig()
    cfg.data.column_map = {"token": "prompt", "answer": "response"}
    assert RunConfig.from_toml(cfg.to_toml()).data.column_map == cfg.data.column_map
    from spark_tui.config import _check_no_secrets

    with pytest.raises(ConfigError, match="secret"):  # a real secret key is still refused
        _check_no_secrets({"data": {"column_map": {}, "token": "hf_x"}})
