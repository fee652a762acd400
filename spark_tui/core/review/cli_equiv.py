"""The command line equivalent to a wizard run, so anything built in the TUI reruns headless."""

from __future__ import annotations

import shlex
from typing import Any

import tomli_w

from spark_tui.config import METHODS, RunConfig, known_keys

# Settings with their own flag in `spark-tui train`; everything else goes through --set.
_FLAGS = {
    "model.id": "--model",
    "data.path": "--data",
    "method.objective": "--objective",
    "train.max_steps": "--max-steps",
    "data.max_length": "--max-length",
    "train.neftune_alpha": "--neftune-alpha",
    "train.learning_rate": "--learning-rate",
}
# Always written: without it `train` would pick a recommended rate for the model.
_ALWAYS = {"train.learning_rate"}


def _method_flag(cfg: RunConfig) -> str | None:
    """The --method value that sets this adapter/DoRA/rsLoRA exactly (None: use --set)."""
    m = cfg.method
    wanted = (m.adapter, m.use_dora, m.use_rslora)
    return next((name for name, value in METHODS.items() if value == wanted), None)


def _toml_value(value: Any) -> str:
    """One-line TOML for a --set value (tomli_w writes arrays over several lines)."""
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_value(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


def train_command(cfg: RunConfig) -> list[str]:
    """`spark-tui train ...` with flags for every setting that differs from the defaults."""
    default = RunConfig()
    argv = [
        "spark-tui",
        "train",
        "--model",
        cfg.model.id,
        "--data",
        cfg.data.path,
        "--objective",
        cfg.method.objective,
    ]
    handled = {"model.id", "data.path", "method.objective", "name"}
    method = _method_flag(cfg)
    if method:
        argv += ["--method", method]
        handled |= {"method.adapter", "method.use_dora", "method.use_rslora"}
    for key in known_keys():
        if key in handled:
            continue
        value = cfg.get(key)
        if value == default.get(key) and key not in _ALWAYS:
            continue
        flag = _FLAGS.get(key)
        if flag:
            argv += [flag, str(value)]
        else:
            argv += ["--set", f"{key}={_toml_value(value)}"]
    return argv


def train_command_text(cfg: RunConfig) -> str:
    return shlex.join(train_command(cfg))
