"""spark-tui: a terminal wizard from "a GPU box and a pile of examples" to "my model answers in Ollama".

Importing the package (or any submodule) never imports the Textual app: `App`
is resolved lazily through a module `__getattr__`, as harlequin does.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# Every entry (TUI, CLI, trainer, benches) imports this package first: no Hub kernels
# in any process that loads a model unless the user exported USE_HUB_KERNELS=1
# (see core/base/env.py for why).
def _no_hub_kernels() -> None:
    from spark_tui.core.base.env import apply_defaults

    apply_defaults(["USE_HUB_KERNELS"])


_no_hub_kernels()


def __getattr__(name: str) -> Any:
    if name == "SparkTuiApp":
        from spark_tui.app import SparkTuiApp

        return SparkTuiApp
    raise AttributeError(name)
