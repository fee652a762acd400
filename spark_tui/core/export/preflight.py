"""Free-disk check before a deploy starts: merged folder + GGUF files + quantized files.

Sizes come from the parameter count (read from the safetensors headers, or
estimated from config.json) times the bytes per weight of each output.  A
K-quant needs an f16 GGUF to quantize from, so one is counted even if it was
not asked for.  A safety margin covers tokenizer files, metadata and temp files.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from spark_tui.core.export.common import ExportError, human_bytes
from spark_tui.core.export.quantize import BITS_PER_WEIGHT, K_QUANTS

MARGIN_FRACTION = 0.05
MARGIN_BYTES = 64 * 1024**2


class DiskSpaceError(ExportError):
    """Not enough free disk for the planned outputs."""


@dataclass
class DiskPlan:
    folder: Path
    items: list[tuple[str, int]] = field(default_factory=list)
    free: int = 0

    @property
    def needed(self) -> int:
        raw = sum(b for _, b in self.items)
        return int(raw * (1 + MARGIN_FRACTION)) + MARGIN_BYTES

    @property
    def ok(self) -> bool:
        return self.free >= self.needed

    def lines(self) -> list[str]:
        out = [f"  {label}: {human_bytes(b)}" for label, b in self.items]
        out.append(
            f"  needed (with margin): {human_bytes(self.needed)}; free at {self.folder}: "
            f"{human_bytes(self.free)}"
        )
        return out


def count_parameters(model_dir: str | Path) -> int:
    """Number of weights in a HF folder (safetensors headers; config estimate otherwise)."""
    from spark_tui.core.export.tensor_source import safetensors_files

    model_dir = Path(model_dir)
    files = safetensors_files(model_dir)
    if files:
        from safetensors import safe_open

        total = 0
        for f in files:
            with safe_open(str(f), framework="pt") as sf:
                for k in sf.keys():  # noqa: SIM118
                    n = 1
                    for d in sf.get_slice(k).get_shape():
                        n *= int(d)
                    total += n
        return total
    return estimate_parameters(json.loads((model_dir / "config.json").read_text(encoding="utf-8")))


def estimate_parameters(config: dict) -> int:
    h = int(config["hidden_size"])
    layers = int(config["num_hidden_layers"])
    ff = int(config.get("intermediate_size") or 4 * h)
    heads = int(config["num_attention_heads"])
    kv = int(config.get("num_key_value_heads") or heads)
    hd = int(config.get("head_dim") or h // heads)
    v = int(config["vocab_size"])
    attn = h * heads * hd * 2 + h * kv * hd * 2
    mlp = 3 * h * ff
    emb = v * h * (1 if config.get("tie_word_embeddings") else 2)
    return layers * (attn + mlp + 2 * h) + emb + h


def plan_outputs(
    n_params: int,
    folder: str | Path,
    types: list[str] | tuple[str, ...],
    *,
    merged_bytes_per_weight: int | None = None,
    existing: set[str] | None = None,
) -> DiskPlan:
    """What the deploy will write into `folder` (skipping `existing` outputs)."""
    folder = Path(folder)
    existing = existing or set()
    plan = DiskPlan(folder=folder)
    if merged_bytes_per_weight and "merged" not in existing:
        plan.items.append(("merged model", n_params * merged_bytes_per_weight))
    wanted = list(dict.fromkeys(t.lower() for t in types))
    if any(t in K_QUANTS for t in wanted) and "f16" not in wanted:
        wanted.insert(0, "f16")
    for t in wanted:
        if t in existing:
            continue
        bpw = BITS_PER_WEIGHT.get(t)
        if bpw is None:
            raise ExportError(f"unknown GGUF type {t!r}")
        plan.items.append((f"GGUF {t}", int(n_params * bpw / 8)))
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    plan.free = shutil.disk_usage(probe).free
    return plan


def check_disk(plan: DiskPlan) -> DiskPlan:
    if not plan.ok:
        raise DiskSpaceError(
            f"not enough free disk at {plan.folder}: about {human_bytes(plan.needed)} needed "
            f"({', '.join(f'{label} {human_bytes(b)}' for label, b in plan.items)}), "
            f"{human_bytes(plan.free)} free; free some space, export fewer types, "
            "or choose another folder with --out"
        )
    return plan
