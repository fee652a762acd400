"""Thread-safe first import of the heavy libraries.

The TUI imports torch, transformers and peft lazily, in worker threads.  Python's
import lock protects single modules, but transformers resolves most names
through a lazy module whose first attribute imports are not safe to race: two
threads importing it at once can see "cannot import name 'AutoTokenizer'".  Every
worker that needs these libraries calls `warm_imports()` first; it does the
first import once, under one lock.
"""

from __future__ import annotations

import threading

_LOCK = threading.RLock()
_done = False


def warm_imports() -> None:
    global _done
    if _done:
        return
    with _LOCK:
        if _done:
            return
        import torch  # noqa: F401
        import transformers
        from transformers import (  # noqa: F401
            AutoModelForCausalLM,
            AutoTokenizer,
            GenerationConfig,
        )

        transformers.utils.logging.get_verbosity()
        import peft  # noqa: F401  (seconds of its own: the Evaluate step needs it first)

        _done = True
