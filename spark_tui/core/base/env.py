"""The environment the training process runs with: one home for its defaults.

The launcher (`core/train/process.py`) puts them into the detached trainer's
environment, the trainer's entry and the in-process engine set the library
ones before torch/transformers/TRL load, and `core/method/trl_compat.py` sets
TRL's before it imports a trainer.  Every one is a default: a value the user
exported wins.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

DEFAULTS: dict[str, str] = {
    # TRL: no "experimental API" warning for the trainers we chose on purpose (ORPO/CPO).
    "TRL_EXPERIMENTAL_SILENCE": "1",
    # Hugging Face tokenizers: no fork warnings, no threads competing with training.
    "TOKENIZERS_PARALLELISM": "false",
    # No Hub download progress bars in train.log.
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    # OpenMP threads that spin while waiting make CPU training several times
    # slower whenever anything else runs on the machine (measured here: 5x on 2
    # busy cores); passive waiting costs little when the machine is idle.
    # OpenMP reads it once, when it starts: only a new process's environment can set it.
    "OMP_WAIT_POLICY": "PASSIVE",
    # transformers >= 5.2x kernelizes every model it loads with code fetched from the
    # Hub (`kernels`) unless this is off: that is remote code the user did not turn on,
    # it fails offline, and it raises when `kernels` is not installed (seen on an H200
    # with NVIDIA's image).  Fused kernels come from Liger, chosen in trainer_args.
    "USE_HUB_KERNELS": "0",
}

# What a running process may set for itself before it loads the libraries.
# (OMP_WAIT_POLICY is left out: too late to matter in a process that already
# loaded torch, and it would leak into that process's unrelated children.)
LIBRARY_QUIET = (
    "TRL_EXPERIMENTAL_SILENCE",
    "TOKENIZERS_PARALLELISM",
    "HF_HUB_DISABLE_PROGRESS_BARS",
    "USE_HUB_KERNELS",
)


def apply_defaults(names: Iterable[str] = LIBRARY_QUIET) -> None:
    """Set the named defaults in `os.environ` where they are not set yet."""
    for name in names:
        os.environ.setdefault(name, DEFAULTS[name])


def child_env(overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a new training process: ours + every default not set + `overrides`."""
    env = dict(os.environ)
    for name, value in DEFAULTS.items():
        env.setdefault(name, value)
    if overrides:
        env.update(overrides)
    return env
