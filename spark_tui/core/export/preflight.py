"""Preflight for the deploy step: the memory and disk each stage needs, against what is free now.

Disk: merged folder + GGUF files + quantized files (a K-quant needs an f16 GGUF
to quantize from, so one is counted), from the parameter count, plus a margin.
Memory: merge, GGUF write, quantize and the tensor check stream one shard or one
tensor at a time, so their needs follow the largest shard / tensor, not the
model.  Only the optional checks load a model: the logits check (HF reference,
freed before llama.cpp maps the file: the larger of the two counts) and the
transformers re-read (fp32).  A required stage that does not fit refuses up
front (`MemoryShortError`: stage, need, available, what to do); an optional
check that does not fit is skipped with the reason.  "Available" is
MemAvailable from core/model/hardware.py (unified-memory aware), or an injected
figure: `available_bytes=` or $SPARK_TUI_AVAILABLE_MEMORY ("8GB", "512M").
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spark_tui.core.export.common import ExportError
from spark_tui.core.export.common import human_bytes as _gb
from spark_tui.core.export.quantize import BITS_PER_WEIGHT, K_QUANTS

MARGIN_FRACTION = 0.05
MARGIN_BYTES = 64 * 1024**2
ENV_AVAILABLE = "SPARK_TUI_AVAILABLE_MEMORY"
# On top of each stage's own arrays: the libraries it loads (torch, transformers,
# llama.cpp) and Python's heap, plus 10 % for allocator slack.
MEMORY_MARGIN_BYTES = 512 * 1024**2
MEMORY_MARGIN_FRACTION = 0.10
# Copies of the largest tensor, in float32, that each streaming stage holds at once.
WRITE_COPIES = 3  # as stored, widened to fp32, permuted / encoded copy
QUANTIZE_COPIES = 2.5  # llama.cpp: the f16 read (0.5), its fp32 conversion (1), output + work
VERIFY_COPIES = 4  # source fp32, permuted copy, rounded copy, dequantised chunk + errors
MERGE_WORK_COPIES = 2  # the weight widened to fp32 and B @ A in fp32
REREAD_COPIES = 2  # transformers dequantises the whole GGUF to a state dict, then the model
LLAMA_CTX = 512  # context the verification gives llama.cpp
# gguf.GGUFReader parses every metadata field into numpy views before the tensors:
# measured 159 MB for SmolLM2's 49k-token vocabulary, ~3.3 KB per token.
READER_BYTES_PER_TOKEN = 3500
FLOAT_TYPES = ("f32", "f16", "bf16")


class DiskSpaceError(ExportError):
    """Not enough free disk for the planned outputs."""


class MemoryShortError(ExportError):
    """A required deploy stage needs more memory than is available now."""


# --------------------------------------------------------------------------- disk


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
        out = [f"  {label}: {_gb(b)}" for label, b in self.items]
        out.append(
            f"  needed (with margin): {_gb(self.needed)}; free at {self.folder}: {_gb(self.free)}"
        )
        return out


def count_parameters(model_dir: str | Path) -> int:
    """Number of weights in a HF folder (safetensors headers; config estimate otherwise)."""
    from spark_tui.core.export.tensor_source import safetensors_files

    model_dir = Path(model_dir)
    if safetensors_files(model_dir):
        return model_footprint(model_dir).n_params
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


def gguf_bytes(n_params: int, qtype: str) -> int:
    """Approximate size of a GGUF file of `qtype`."""
    bpw = BITS_PER_WEIGHT.get(qtype.lower())
    if bpw is None:
        raise ExportError(f"unknown GGUF type {qtype!r}")
    return int(n_params * bpw / 8)


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
        if t not in existing:
            plan.items.append((f"GGUF {t}", gguf_bytes(n_params, t)))
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    plan.free = shutil.disk_usage(probe).free
    return plan


def check_disk(plan: DiskPlan) -> DiskPlan:
    if not plan.ok:
        raise DiskSpaceError(
            f"not enough free disk at {plan.folder}: about {_gb(plan.needed)} needed "
            f"({', '.join(f'{label} {_gb(b)}' for label, b in plan.items)}), "
            f"{_gb(plan.free)} free; free some space, export fewer types, "
            "or choose another folder with --out"
        )
    return plan


# --------------------------------------------------------------------------- memory


@dataclass
class MemoryFigure:
    """Memory available now, and where the figure comes from."""

    bytes: int
    source: str
    page_cache: int = 0  # reclaimable page cache + buffers counted in `bytes`
    unified: bool = False


def parse_size(text: str) -> int:
    """'8GB', '8 GiB', '512M', '1.5G' or plain bytes (units are powers of 1024)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if not m:
        raise ExportError(f"${ENV_AVAILABLE}={text!r} is not a size; write e.g. 8GB or 512M")
    return int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2) or " "))


def available_memory(available_bytes: int | None = None) -> MemoryFigure:
    """RAM free for the deploy now: an injected figure, $SPARK_TUI_AVAILABLE_MEMORY, or the
    hardware probe's MemAvailable (unified-memory aware: the only budget on a DGX Spark)."""
    if available_bytes is not None:
        return MemoryFigure(int(available_bytes), "given by the caller")
    if env := os.environ.get(ENV_AVAILABLE, "").strip():
        return MemoryFigure(parse_size(env), f"${ENV_AVAILABLE}")
    from spark_tui.core.model import hardware

    p = hardware.probe(with_disk=False, with_processes=False)
    where = "unified memory (CPU and GPU share it)" if p.unified_memory else "system RAM"
    return MemoryFigure(
        p.mem_available, f"{where}, MemAvailable", p.reclaimable_cache, p.unified_memory
    )


@dataclass
class ModelFootprint:
    """What the memory needs are computed from: read from the safetensors headers only."""

    n_params: int
    weight_bytes: int
    largest_shard: int
    largest_tensor: int  # elements
    largest_tensor_name: str
    dtype: str  # the checkpoint's dtype as torch names it: bfloat16, float16, float32
    bytes_per_weight: int
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def largest_tensor_fp32(self) -> int:
        return self.largest_tensor * 4


_DTYPES = {"bf16": ("bfloat16", 2), "f16": ("float16", 2), "f32": ("float32", 4)}


def model_footprint(model_dir: str | Path) -> ModelFootprint:
    from spark_tui.core.export.tensor_source import TensorSource

    model_dir = Path(model_dir)
    src = TensorSource(model_dir)
    sizes: dict[str, int] = {}
    n_params, largest, largest_name = 0, 0, ""
    for name in src.names():
        n = 1
        for d in src.shape(name):
            n *= int(d)
        n_params += n
        key = src.dtype(name).lower().replace("float", "f")  # BF16 / bfloat16 -> bf16
        key = key if key in _DTYPES else "f32"
        sizes[key] = sizes.get(key, 0) + n
        if n > largest:
            largest, largest_name = n, name
    dtype, nbytes = _DTYPES[max(sizes, key=lambda k: sizes[k]) if sizes else "f32"]
    shards = src.shard_sizes() or [0]
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        config = {}
    return ModelFootprint(
        n_params, sum(shards), max(shards), largest, largest_name, dtype, nbytes, config
    )


@dataclass
class StageNeed:
    """One deploy stage: the RAM it needs at its peak and the disk it writes."""

    stage: str
    ram: int
    available: int
    disk: int = 0
    required: bool = True
    basis: str = ""  # how `ram` was counted
    off: str | None = None  # turned off by the user: why
    dtype: str | None = None  # logits check: the dtype the HF reference loads in

    @property
    def fits(self) -> bool:
        return self.ram <= self.available

    def skip_reason(self) -> str | None:
        if self.off:
            return f"skipped: {self.off}"
        if not self.fits:
            return f"skipped: needs ~{_gb(self.ram)}, {_gb(self.available)} available"
        return None

    def status(self) -> str:
        if self.fits and not self.off:
            return "ok"
        return "NOT ENOUGH MEMORY" if self.required else str(self.skip_reason())

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "fits": self.fits, "status": self.status()}


def with_margin(raw: float) -> int:
    return int(raw * (1 + MEMORY_MARGIN_FRACTION)) + MEMORY_MARGIN_BYTES


def logits_stage(
    fp: ModelFootprint, qtype: str, file_bytes: int, memory: MemoryFigure, *, off: str | None = None
) -> StageNeed:
    """The logits check: the HF reference (fp32 when that fits, else the checkpoint's dtype),
    freed before llama.cpp maps the file - so the larger of the two, not their sum."""
    cfg = fp.config
    n_vocab = int(cfg.get("vocab_size") or 32000)
    n_layer = int(cfg.get("num_hidden_layers") or 32)
    heads = int(cfg.get("num_attention_heads") or 32)
    n_kv = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or int(cfg.get("hidden_size") or 4096) // heads)
    logits = LLAMA_CTX * n_vocab * 4
    llama = file_bytes + logits + LLAMA_CTX * n_layer * 2 * n_kv * head_dim * 2
    options = dict.fromkeys([("float32", 4), (fp.dtype, fp.bytes_per_weight)])
    for dtype, nbytes in options:  # noqa: B007 - the one chosen is used below
        ref = fp.n_params * nbytes + logits
        if (need := with_margin(max(ref, llama))) <= memory.bytes:
            break  # fp32 (exact) when it fits, else the checkpoint's own dtype
    return StageNeed(
        f"verify: logits ({qtype})",
        need,
        memory.bytes,
        required=False,
        basis=f"the larger of the HF model in {dtype} ({_gb(ref)}) and llama.cpp's mapped "
        f"file + context ({_gb(llama)}), one after the other",
        off=off,
        dtype=dtype,
    )


def reread_stage(fp: ModelFootprint, qtype: str, memory: MemoryFigure, off: str | None = None):
    return StageNeed(
        f"verify: transformers re-read ({qtype})",
        with_margin(fp.n_params * 4 * REREAD_COPIES),
        memory.bytes,
        required=False,
        basis=f"the model in fp32 ({_gb(fp.n_params * 4)}) x{REREAD_COPIES}: the dequantised "
        "GGUF and the model built from it",
        off=off,
    )


@dataclass
class DeployPreflight:
    """Every stage's need against what is free now; `check()` refuses what cannot fit."""

    memory: MemoryFigure
    stages: list[StageNeed] = field(default_factory=list)
    disk: DiskPlan | None = None
    notes: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)  # stage-independent hints for a refusal

    def add(self, stage: str, raw: float, basis: str, disk: int = 0, required: bool = True) -> None:
        """A stage whose arrays take `raw` bytes (the margin is added here)."""
        ram = with_margin(raw)
        self.stages.append(StageNeed(stage, ram, self.memory.bytes, disk, required, basis))

    def get(self, prefix: str) -> StageNeed | None:
        return next((s for s in self.stages if s.stage.startswith(prefix)), None)

    def lines(self) -> list[str]:
        mem = self.memory
        cache = f"; {_gb(mem.page_cache)} of it page cache" if mem.page_cache else ""
        out = [f"preflight: {_gb(mem.bytes)} memory available now ({mem.source}{cache})"]
        out.append(f"  {'stage':<38} {'RAM need':>9} {'disk':>9}  status")
        for s in self.stages:
            disk = _gb(s.disk) if s.disk else "-"
            out.append(f"  {s.stage:<38} {_gb(s.ram):>9} {disk:>9}  {s.status()}")
        if self.disk is not None:
            out.append(
                f"  disk: {_gb(self.disk.needed)} needed with margin, {_gb(self.disk.free)} free "
                f"at {self.disk.folder}" + ("" if self.disk.ok else " - NOT ENOUGH DISK")
            )
        out.extend(f"  note: {n}" for n in self.notes)
        return out

    def to_dict(self) -> dict[str, Any]:
        d = self.disk
        disk = d and {"folder": str(d.folder), "needed": d.needed, "free": d.free, "items": d.items}
        stages = [s.to_dict() for s in self.stages]
        return {"memory": dict(self.memory.__dict__), "stages": stages, "disk": disk,
                "notes": self.notes, "summary": self.lines()}  # fmt: skip

    def check(self) -> DeployPreflight:
        if self.disk is not None:
            check_disk(self.disk)
        for s in self.stages:
            if s.required and not s.fits:
                raise MemoryShortError(refusal(s, self.memory, self.advice))
        return self


def refusal(s: StageNeed, memory: MemoryFigure, advice: list[str] | None = None) -> str:
    """The plain message for a required stage that does not fit: need, available, what to do."""
    from spark_tui.core.model.sysmem import DROP_CACHES_COMMAND

    cache = f" ({_gb(memory.page_cache)} of it now)" if memory.page_cache else ""
    todo = [
        f"free the page cache{cache}: sudo sh -c '{DROP_CACHES_COMMAND}'",
        "close other programs (a training run, another model server, a browser)",
        *(advice or []),
    ]
    return (
        f"not enough memory for the {s.stage} stage: it needs about {_gb(s.ram)} "
        f"({s.basis}), and {_gb(s.available)} is available now ({memory.source}). "
        f"To go on: {'; '.join(todo)}."
    )


def plan_export(
    model_dir: str | Path,
    out_dir: str | Path,
    types: list[str] | tuple[str, ...],
    *,
    verify: bool = True,
    logits: bool = True,
    check_transformers: bool | None = None,
    existing: set[str] | None = None,
    available_bytes: int | None = None,
) -> DeployPreflight:
    """Memory and disk of exporting `model_dir` to `types` (write, quantize, verify)."""
    fp = model_footprint(model_dir)
    mem = available_memory(available_bytes)
    types = [t.lower() for t in types]
    kq = [t for t in types if t in K_QUANTS]
    written = [t for t in types if t not in K_QUANTS]
    if kq and "f16" not in written:
        written.insert(0, "f16")
    big, n = fp.largest_tensor_fp32, fp.n_params
    what = f"largest tensor {fp.largest_tensor_name} in fp32 ({_gb(big)})"
    pf = DeployPreflight(mem, disk=plan_outputs(n, out_dir, types, existing=existing))
    if set(types) != {"q4_k_m"}:
        pf.advice.append("pick q4_k_m alone (the smallest file to write, map and check)")
    if verify and logits:
        pf.advice.append("the logits check, the one step that loads the whole model, is skipped "
                         "by itself when it does not fit (--no-logits turns it off)")  # fmt: skip
    disk = sum(gguf_bytes(n, t) for t in written)
    pf.add(
        f"GGUF write ({', '.join(written)})", big * WRITE_COPIES, f"{what} x{WRITE_COPIES}", disk
    )
    if kq:
        how = f"{what} x{QUANTIZE_COPIES} (llama.cpp quantizes tensor by tensor)"
        pf.add(
            f"quantize ({', '.join(kq)})",
            big * QUANTIZE_COPIES,
            how,
            sum(gguf_bytes(n, t) for t in kq),
        )
    if not verify:
        pf.notes.append("verification turned off (--no-verify)")
        return pf
    meta = int(fp.config.get("vocab_size") or 32000) * READER_BYTES_PER_TOKEN
    how = f"{what} x{VERIFY_COPIES} + the file's metadata as read ({_gb(meta)})"
    pf.add("verify: tokenization + tensors", big * VERIFY_COPIES + meta, how)
    off = None if logits else "turned off (--no-logits)"
    for t in types:
        pf.stages.append(logits_stage(fp, t, gguf_bytes(n, t), mem, off=off))
        reread = check_transformers if check_transformers is not None else t in FLOAT_TYPES
        if reread and t in FLOAT_TYPES:
            pf.stages.append(reread_stage(fp, t, mem, off))
    return pf


def _merge_shard_bytes(largest_input_shard: int, in_bpw: float, out_bpw: float) -> int:
    """The output shard the streaming merge buffers (the base's own shard size, <= 5 GB)."""
    from spark_tui.core.export.stream_merge import output_shard_bytes

    return output_shard_bytes(largest_input_shard, in_bpw, out_bpw)


def plan_merge(
    base_dir: str | Path,
    out_dir: str | Path,
    *,
    adapter_bytes: int,
    merge_bytes_per_weight: int | None = None,
    check: bool = True,
    available_bytes: int | None = None,
) -> DeployPreflight:
    """Memory and disk of merging an adapter into `base_dir` (streaming, shard by shard)."""
    fp = model_footprint(base_dir)
    out_bpw = merge_bytes_per_weight or fp.bytes_per_weight
    out_shard = min(  # buffered until flushed
        _merge_shard_bytes(fp.largest_shard, fp.bytes_per_weight, out_bpw),
        fp.n_params * out_bpw,
    )
    disk = plan_outputs(fp.n_params, Path(out_dir).parent, [], merged_bytes_per_weight=out_bpw)
    pf = DeployPreflight(available_memory(available_bytes), disk=disk)
    work = fp.largest_tensor_fp32 * MERGE_WORK_COPIES
    how = (
        f"largest input shard {_gb(fp.largest_shard)} + one output shard {_gb(out_shard)} + "
        f"adapter {_gb(adapter_bytes)} + largest tensor in fp32 x{MERGE_WORK_COPIES} {_gb(work)}"
    )
    raw = fp.largest_shard + out_shard + adapter_bytes + work
    pf.add("merge", raw, how, fp.n_params * out_bpw)
    if check:  # merge.py loads the adapter model, frees it, then loads the merged model
        one = fp.n_params * out_bpw + adapter_bytes
        how = f"a whole model + adapter ({_gb(one)}): the adapter model, then the merged one"
        pf.add("merge check (logits)", one, how, required=False)
    return pf
