"""Load the tokenizer of the model a run uses (for token counts, templates and preview)."""

from __future__ import annotations

from typing import Any

from spark_tui.core.data.errors import DataError


def load_tokenizer(
    model: str = "default",
    *,
    revision: str = "",
    trust_remote_code: bool = False,
    progress: Any = None,
) -> Any:
    """The tokenizer of `model` ("default", a local folder or a Hub id); None for "none".

    A Hub id is only tried when the Hub is reachable; offline, the error says so.
    `progress(fraction, message)` follows the bundled model's one-time conversion.
    """
    if model in ("none", "None", ""):
        return None
    from spark_tui.core.base.errors import SparkError
    from spark_tui.core.model import resolve as models

    if model == "default" and progress is not None:
        models.ensure_default_model(progress=progress)  # about a minute, the first time only

    try:
        path = models.resolve_model_path(model)
    except SparkError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"cannot find the model {model!r}: {exc}") from exc
    from pathlib import Path

    if not Path(path).exists():
        from spark_tui.core.data.read_datasets import hub_offline

        if hub_offline():
            raise DataError(
                f"the model '{model}' is not a local folder and this machine is offline; "
                "download it first or pick a local model folder"
            )
    from spark_tui.core.base.lazy import warm_imports

    warm_imports()  # workers in the TUI may get here first, from several threads
    try:
        from transformers import AutoTokenizer

        with models.quiet_transformers():
            kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
            if revision:
                kwargs["revision"] = revision
            return AutoTokenizer.from_pretrained(path, **kwargs)
    except Exception as exc:  # noqa: BLE001 - transformers raises many types
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot load the tokenizer of {model!r}: {msg}") from exc
