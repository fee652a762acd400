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
import os
from dataclasses import dataclass
from typing import Any

from spark_tui.core.errors import SparkError

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
_OBJECTIVE_TO_KIND = {"sft": "sft", "dpo": "dpo", "simpo": "cpo", "orpo": "orpo", "kto": "kto"}
_OBJECTIVE_TO_KIND["reward"] = "reward"


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
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
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


def make_config(classes: TrainerClasses, **kwargs: Any) -> Any:
    """Build a TRL config, dropping (and reporting) arguments this TRL version does not know."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(classes.config)}
    unknown = sorted(k for k in kwargs if k not in known)
    args = {k: v for k, v in kwargs.items() if k in known}
    if unknown:
        import logging

        logging.getLogger("spark_tui").warning(
            "TRL %s %s does not take %s; ignored", trl_version(), classes.config.__name__, unknown
        )
    return classes.config(**args)


def available_objectives() -> dict[str, str]:
    """Objective -> "" if its trainer imports, else the reason it does not (for the Method step)."""
    out: dict[str, str] = {}
    for objective in _OBJECTIVE_TO_KIND:
        try:
            trainer_classes(objective)
            out[objective] = ""
        except TRLCompatError as exc:
            out[objective] = str(exc)
    return out
