"""The hardware the training process sees, and the number format it trains and loads in.

`detect_hardware` probes with torch inside the training process; the rest are
pure decisions on a `Hardware` value, so they are tested without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spark_tui.config import RunConfig
from spark_tui.core.method.choices import MethodError


@dataclass
class Hardware:
    """What the training process can use (probed with torch, inside the process)."""

    device: str  # cuda | mps | cpu
    name: str
    bf16: bool
    fp16: bool
    capability: tuple[int, int] | None = None  # CUDA compute capability


# Native bf16 arithmetic starts with Ampere (compute capability 8.0).  Older GPUs
# (T4, V100) can emulate it, and torch.cuda.is_bf16_supported() counts that
# emulation as support — training on it is many times slower than fp16.
BF16_MIN_CAPABILITY = (8, 0)
# FlashAttention 2 needs Ampere or newer and 16-bit activations.
FLASH_MIN_CAPABILITY = (8, 0)


def detect_hardware() -> Hardware:
    import torch

    if torch.cuda.is_available():
        cap = tuple(int(c) for c in torch.cuda.get_device_capability(0))
        return Hardware(
            device="cuda",
            name=torch.cuda.get_device_name(0),
            bf16=cap >= BF16_MIN_CAPABILITY,
            fp16=True,
            capability=(cap[0], cap[1]),
        )
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():  # pragma: no cover - macOS only
        return Hardware(device="mps", name="Apple GPU", bf16=False, fp16=True)
    return Hardware(device="cpu", name="CPU", bf16=False, fp16=False)


def choose_precision(requested: str, hw: Hardware) -> str:
    """'bf16' | 'fp16' | 'fp32' for the run; explicit choices the hardware cannot do are errors."""
    if requested == "auto":
        if hw.device == "cuda":
            return "bf16" if hw.bf16 else "fp16"
        return "fp32"
    if requested == "fp16" and hw.device == "cpu":
        raise MethodError("train.precision = 'fp16' needs a GPU; use 'fp32' (or 'auto') on CPU")
    if requested == "bf16" and hw.device == "cuda" and not hw.bf16:
        raise MethodError(f"{hw.name} has no bf16 support; use train.precision = 'fp16' or 'auto'")
    return requested


def torch_dtype(precision: str) -> Any:
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]


def load_dtype(cfg: RunConfig, precision: str) -> Any:
    """The dtype the base weights are loaded in.

    Full fine-tuning keeps fp32 master weights and autocasts to bf16/fp16 (the
    HF Trainer's mixed precision; also what the memory estimator assumes).
    Adapter runs load a 16-bit frozen base (PEFT keeps the adapters in fp32).
    """
    if cfg.method.adapter == "full" or precision == "fp32":
        return torch_dtype("fp32")
    return torch_dtype(precision)


def flash_attention_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("flash_attn") is not None


def choose_attention(hw: Hardware, precision: str) -> str:
    """The attention implementation to load the model with, chosen explicitly.

    FlashAttention 2 where it is installed and can run (CUDA, Ampere or newer,
    16-bit); PyTorch's SDPA everywhere else.
    """
    if (
        hw.device == "cuda"
        and precision in ("bf16", "fp16")
        and (hw.capability or (0, 0)) >= FLASH_MIN_CAPABILITY
        and flash_attention_installed()
    ):
        return "flash_attention_2"
    return "sdpa"


def packing_note(attention: str) -> str:
    """Why packing must be off with this attention implementation ("" when it may stay on).

    TRL packs padding-free (one long row with position ids).  Only varlen kernels
    (FlashAttention) keep the packed examples apart cheaply; with SDPA/eager
    transformers builds a dense block-diagonal mask over the whole packed row —
    slower than not packing and quadratic in memory.
    """
    if attention.startswith("flash_attention"):
        return ""
    return (
        f"packing is off: it needs FlashAttention (this run uses {attention}; "
        "`pip install flash-attn` on an Ampere-or-newer GPU turns it on)"
    )
