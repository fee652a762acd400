from __future__ import annotations

from spark_tui.commands.train import build_config
from spark_tui.config import RunConfig
from spark_tui.core.review.cli_equiv import train_command, train_command_text


def _parse(argv):
    from spark_tui.cli import build_parser

    return build_parser().parse_args(argv[1:])


def test_equivalent_command_rebuilds_the_same_config():
    cfg = RunConfig(name="x")
    cfg.model.id = "default"
    cfg.method.objective = "dpo"
    cfg.method.adapter = "qlora"
    cfg.lora.r = 8
    cfg.lora.target_modules = "q_proj,v_proj"
    cfg.train.max_steps = 12
    cfg.train.packing = True
    cfg.data.system_prompt = 'You are "Sparky".'
    cfg.preference.beta = 0.2
    argv = train_command(cfg)
    assert argv[:2] == ["spark-tui", "train"]
    assert "--method" in argv and argv[argv.index("--method") + 1] == "qlora"
    rebuilt = build_config(_parse(argv))
    rebuilt.name = cfg.name
    assert rebuilt == cfg
    assert "Sparky" in train_command_text(cfg)


def test_dora_flag():
    cfg = RunConfig()
    cfg.method.use_dora = True
    argv = train_command(cfg)
    assert argv[argv.index("--method") + 1] == "dora"
    assert build_config(_parse(argv)).method.use_dora


def test_train_flags_pick_a_learning_rate_for_the_model():
    from spark_tui.cli import build_parser

    def lr(*argv):
        return build_config(build_parser().parse_args(["train", *argv])).train.learning_rate

    assert lr("--model", "default") == 1e-3  # the tiny bundled model needs a bigger step
    assert lr("--model", "meta-llama/Llama-3.1-8B-Instruct") == 2e-4  # the course default
    assert lr("--model", "default", "--lr", "5e-5") == 5e-5  # an explicit rate always wins
    # chosen after every --set: full fine-tuning / a preference objective set that way
    assert lr("--model", "default", "--set", "method.adapter=full") == 2e-5
    assert lr("--model", "default", "--set", "method.objective=dpo") == 5e-5
    assert lr("--model", "default", "--set", "train.learning_rate=3e-4") == 3e-4


def test_follower_line_survives_a_null_eval_loss():
    from spark_tui.commands.train import _metric_line

    line = _metric_line({"kind": "eval", "step": 4, "eval_loss": None, "nonfinite": {"eval_loss": "nan"}}, 10)
    assert line == "step 4/10  eval_loss nan"
    assert _metric_line({"kind": "eval", "step": 4, "eval_loss": 1.5}, 10) == "step 4/10  eval_loss 1.5000"
