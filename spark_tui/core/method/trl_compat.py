"""The one place that imports TRL trainers and their configs.

TRL moves things between releases: in TRL 1.x ORPO and CPO (which also runs
SimPO) live in `trl.experimental`, while SFT, DPO, KTO and reward modelling are
top-level.  Every other module asks this adapter for a trainer by objective, so
when an API moves again the failure is one clear message naming the installed
TRL version instead of an ImportError deep inside the training process.

Nothing heavy is imported at module import time: the TUI imports the core
before torch is loaded.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from spark_tui.core.base.env import apply_defaults
from spark_tui.core.base.errors import SparkError

# Where each trainer lives, newest layout first.  (module, trainer, config)
_LOCATIONS: dict[str, list[tuple[str, str, str]]] = {
    "sft": [("trl", "SFTTrainer", "SFTConfig")],
    "dpo": [("trl", "DPOTrainer", "DPOConfig")],
    "kto": [
        ("trl", "KTOTrainer", "KTOConfig"),
        ("trl.experimental.kto", "KTOTrainer", "KTOConfig"),
    ],
    "reward": [("trl", "RewardTrainer", "RewardConfig")],
    "orpo": [
        ("trl.experimental.orpo", "ORPOTrainer", "ORPOConfig"),
        ("trl", "ORPOTrainer", "ORPOConfig"),
    ],
    # SimPO has no trainer of its own: it is CPO with loss_type="simpo", cpo_alpha=0.
    "cpo": [
        ("trl.experimental.cpo", "CPOTrainer", "CPOConfig"),
        ("trl", "CPOTrainer", "CPOConfig"),
    ],
}
_OBJECTIVE_TO_KIND = {
    "sft": "sft",
    "dpo": "dpo",
    "simpo": "cpo",
    "orpo": "orpo",
    "kto": "kto",
    "reward": "reward",
}


class TRLCompatError(SparkError):
    """The installed TRL does not have a trainer where this version of spark-tui expects it."""


@dataclass(frozen=True)
class TrainerClasses:
    """The trainer class and its config class for one objective."""

    kind: str
    trainer: type
    config: type
    module: str


def trl_version() -> str:
    try:
        from importlib.metadata import version

        return version("trl")
    except Exception:  # pragma: no cover - TRL not installed at all
        return "not installed"


def trainer_classes(objective: str) -> TrainerClasses:
    """The TRL trainer + config for an objective ("sft", "dpo", "simpo", "orpo", "kto", "reward")."""
    kind = _OBJECTIVE_TO_KIND.get(objective)
    if kind is None:
        raise TRLCompatError(
            f"unknown objective '{objective}'; use one of {', '.join(_OBJECTIVE_TO_KIND)}"
        )
    # Quiet TRL's "experimental API" warning for ORPO/CPO: we chose it on purpose.
    apply_defaults(["TRL_EXPERIMENTAL_SILENCE"])
    tried: list[str] = []
    for mod_name, trainer_name, config_name in _LOCATIONS[kind]:
        try:
            mod = importlib.import_module(mod_name)
            trainer = getattr(mod, trainer_name)
            config = getattr(mod, config_name)
        except ModuleNotFoundError as exc:
            if exc.name and not (mod_name == exc.name or mod_name.startswith(exc.name + ".")):
                raise  # a dependency of TRL itself is missing: show the real error
            tried.append(f"{mod_name}.{trainer_name}")
            continue
        except (AttributeError, ImportError):
            tried.append(f"{mod_name}.{trainer_name}")
            continue
        return TrainerClasses(kind=kind, trainer=trainer, config=config, module=mod_name)
    raise TRLCompatError(
        f"TRL {trl_version()} has no {_LOCATIONS[kind][0][1]} (looked for {', '.join(tried)}); "
        f"objective '{objective}' needs TRL 1.16 or a version with the same layout — "
        "install `trl>=1.16,<2` or pick another objective"
    )


# Settings that define what is trained or where it goes: if the installed TRL /
# transformers no longer takes one, training without it would silently train
# something else, so the run stops and says which key and which version.
ESSENTIAL_KEYS = frozenset(
    {
        "output_dir", "max_steps", "num_train_epochs", "learning_rate", "max_length",
        "bf16", "fp16", "use_cpu", "gradient_checkpointing", "neftune_noise_alpha",
        "save_steps", "save_strategy", "eval_strategy", "report_to", "logging_dir",
        "loss_type", "beta", "cpo_alpha", "simpo_gamma", "desirable_weight",
        "undesirable_weight", "completion_only_loss", "assistant_only_loss", "packing",
        "padding_free", "precompute_ref_log_probs", "model_init_kwargs",
        "ref_model_init_kwargs", "remove_unused_columns",
    }
)  # fmt: skip


def make_config(classes: TrainerClasses, **kwargs: Any) -> Any:
    """Build a TRL config.  A setting this TRL version does not take is an error when it
    defines the objective or the output (ESSENTIAL_KEYS), and dropped with a warning otherwise."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(classes.config)}
    unknown = sorted(k for k in kwargs if k not in known)
    essential = [k for k in unknown if k in ESSENTIAL_KEYS]
    if essential:
        raise TRLCompatError(
            f"TRL {trl_version()} {classes.config.__name__} does not take {', '.join(essential)}, "
            "which this run needs (training without it would train something else); "
            "install `trl>=1.16,<2` with transformers 5, the versions spark-tui is built for"
        )
    args = {k: v for k, v in kwargs.items() if k in known}
    if unknown:
        import logging

        logging.getLogger("spark_tui").warning(
            "TRL %s %s does not take %s; ignored", trl_version(), classes.config.__name__, unknown
        )
    return classes.config(**args)
