"""Tensor check: every tensor of a GGUF file read back and compared with the checkpoint.

The file is opened with `gguf.GGUFReader` (memory-mapped); each tensor is
dequantised where needed (`gguf.quants.dequantize`) and compared with what
`plan_tensors(...).source_data` says it must hold - the very transforms the
writer applies (Q/K permutation, generated rope_freqs), so writer and verifier
cannot disagree.  One tensor is in memory at a time, in row chunks, and the
pages of the mapped file are handed back after each tensor, so the check costs
memory in proportion to the largest tensor, not the model.

* F32 / F16 / BF16 tensors must be bit-exact: F16 against the source cast to
  float16, BF16 against the source rounded to bfloat16 (round to nearest even).
* Quantised tensors must stay within `ERROR_BOUNDS`: the largest |error| in each
  quantisation block may be at most bound x that block's largest |value| (plus a
  tiny absolute slack for fp16 scales that underflow, see `_abs_slack`).
* K-quant files are made by llama.cpp from our f16 file, so they are compared
  with the f16 plan, the source first rounded to what the f16 file held.
* The names and shapes must equal the plan exactly: a missing or extra tensor
  fails the check.
"""

from __future__ import annotations

import contextlib
import mmap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spark_tui.core.export.common import ExportError, Progress, report

# Max |error| per quantisation block as a fraction of that block's max |x| (block: 32 values
# for the legacy types, the 256-value super-block for K-quants).  Derived from each format,
# then checked against llama.cpp's own quantizers (ggml_quantize_chunk) on Gaussian, t(3),
# uniform, all-positive, spiky and row-/sub-block-scaled data (worst seen in brackets):
# * Q8_0  : symmetric, d = amax/127 -> rounding d/2 = 1/254, + 2^-11 for the fp16 scale and
#           2^-11 for the f16 source = 0.0049                                      [0.0044]
# * Q4_0  : d = amax/8 with the signed max at -8; the other sign clamps at +7, so one full
#           step: 1/8 (+ fp16 terms)                                                [0.1250]
# * Q5_0  : the same with 32 levels: 1/16                                           [0.0625]
# * Q4_1  : affine, step R/15 with R <= 2 amax -> half a step <= 1/15, + fp16 d and m  [0.0673]
# * Q5_1  : affine, 31 steps -> 1/31, + fp16 terms                                  [0.0331]
# * Q6_K  : signed 6-bit per 16 values (-32..31): the clamped side is one step amax/32, +
#           8-bit sub-block scales relative to the super-block (32 x 1/256 of a step)  [0.0224]
# * Q5_K  : affine 5-bit per 32 values, step <= 2 amax/31; the scale/min are least-squares
#           fits (a value can sit a full step off), + 6-bit scales and mins (~0.024) [0.0650]
# * Q4_K  : the same with 15 steps: 2/15 + 0.024                                    [0.1189]
# * Q3_K  : signed 3-bit per 16 values: one step amax/4, + 6-bit scales             [0.2685]
# * Q2_K  : affine 2-bit per 16 values, step R/3, + 4-bit scales and mins           [0.4289]
# * IQ4_NL: 16-level non-linear table (llama.cpp's fallback for IQ types)           [0.1394]
# A broken file (wrong layout, wrong tensor, corrupted bytes) is off by the order of amax.
ERROR_BOUNDS: dict[str, float] = {
    "Q8_0": 0.006,
    "Q4_0": 0.14,
    "Q5_0": 0.07,
    "Q4_1": 0.075,
    "Q5_1": 0.038,
    "Q6_K": 0.04,
    "Q5_K": 0.09,
    "Q4_K": 0.16,
    "Q3_K": 0.3,
    "Q2_K": 0.5,
    "IQ4_NL": 0.16,
}
# Types we never produce (other IQ / ternary / FP4 types): only garbage is caught.
DEFAULT_BOUND = 0.5
# Largest integer that multiplies each format's fp16 (super-)scale: a scale below fp16's
# normal range keeps only an absolute precision of 2^-24, so an element may be off by up to
# this many units of 2^-24 on top of the relative bound.
_SCALE_MULTIPLIER: dict[str, int] = {
    "Q8_0": 127,
    "Q4_0": 8,
    "Q5_0": 16,
    "Q4_1": 16,
    "Q5_1": 32,
    "Q6_K": 32 * 128,
    "Q5_K": 32 * 64,
    "Q4_K": 16 * 64,
    "Q3_K": 4 * 32,
    "Q2_K": 4 * 16,
    "IQ4_NL": 127,
}
EXACT_TYPES = ("F32", "F16", "BF16")
CHUNK_ELEMENTS = 1 << 22  # rows compared per step: ~16 MB of float32
_HUGE = 1e30


@dataclass
class TensorCheck:
    """One tensor's comparison with the checkpoint."""

    name: str
    qtype: str  # the type stored in the file (F16, Q4_K, ...)
    n_elements: int
    max_abs_err: float
    bound: float | None  # None: compared bit for bit
    worst_fraction: float  # worst block's |error| / allowed; exact types: share of values off
    mismatches: int = 0  # exact types: elements whose bits differ
    passed: bool = True

    def line(self) -> str:
        if self.bound is None:
            what = "bit-exact" if self.passed else f"{self.mismatches} values differ"
        else:
            what = f"{self.worst_fraction:.0%} of its bound ({self.bound:g} x block max)"
        return f"{self.name} ({self.qtype}): max |err| {self.max_abs_err:.3g}, {what}"


@dataclass
class TensorReport:
    """All tensors of one file against the plan."""

    plan_type: str  # the plan compared with ("f16" for K-quant files)
    n_expected: int = 0
    n_in_file: int = 0
    checks: list[TensorCheck] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    wrong_shape: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[TensorCheck]:
        return [c for c in self.checks if not c.passed]

    @property
    def ok(self) -> bool:
        return (
            not (self.missing or self.extra or self.wrong_shape or self.errors or self.failed)
            and len(self.checks) == self.n_expected > 0
        )

    @property
    def worst(self) -> TensorCheck | None:
        """The failed tensor with the largest error, else the one closest to its bound."""
        pool = self.failed or [c for c in self.checks if c.bound is not None] or self.checks
        return max(pool, key=lambda c: (c.worst_fraction, c.max_abs_err), default=None)

    def type_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.checks:
            out[c.qtype] = out.get(c.qtype, 0) + 1
        return dict(sorted(out.items()))

    def lines(self) -> list[str]:
        counts = ", ".join(f"{n} {t}" for t, n in self.type_counts().items())
        head = (
            f"tensors: {len(self.checks)}/{self.n_expected} checked against the checkpoint "
            f"({self.plan_type} plan; {counts or 'none'})" + (" - ok" if self.ok else " - FAILED")
        )
        out = [head]
        if w := self.worst:
            out.append(f"  worst: {w.line()}")
        for c in self.failed[:8]:
            if c is not self.worst:
                out.append(f"  failed: {c.line()}")
        for label, names in (
            ("missing from the file", self.missing),
            ("not in the plan", self.extra),
            ("wrong shape", self.wrong_shape),
        ):
            if names:
                more = f" (+{len(names) - 6} more)" if len(names) > 6 else ""
                out.append(f"  {label}: {', '.join(names[:6])}{more}")
        out.extend(f"  error: {e}" for e in self.errors)
        return out

    def to_dict(self) -> dict[str, Any]:
        w = self.worst
        return {
            "ok": self.ok,
            "plan_type": self.plan_type,
            "expected": self.n_expected,
            "in_file": self.n_in_file,
            "checked": len(self.checks),
            "types": self.type_counts(),
            "worst": None if w is None else dict(w.__dict__),
            "failed": [dict(c.__dict__) for c in self.failed],
            "missing": self.missing,
            "extra": self.extra,
            "wrong_shape": self.wrong_shape,
            "errors": self.errors,
            "bounds": {
                k: ERROR_BOUNDS[k]
                for k in sorted({c.qtype for c in self.checks})
                if k in ERROR_BOUNDS
            },
        }


def plan_type_for(gguf_type: str) -> str:
    """The writer plan a file of `gguf_type` is compared with (K-quants: their f16 source)."""
    t = gguf_type.lower()
    return t if t in ("f32", "f16", "bf16", "q8_0") else "f16"


def bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns, rounded to nearest even (as ggml and torch round)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def _abs_slack(qtype: str) -> float:
    return _SCALE_MULTIPLIER.get(qtype, 256) * 2.0**-24


def _release(reader: Any, t: Any) -> None:
    """Drop this tensor's pages from our mapping (they stay in the page cache), so the RSS of a
    whole-file read stays at one tensor."""
    mm = getattr(reader.data, "_mmap", None)
    if mm is None or not hasattr(mm, "madvise"):
        return
    start = int(t.data_offset) // mmap.PAGESIZE * mmap.PAGESIZE
    end = int(t.data_offset) + int(t.n_bytes)
    with contextlib.suppress(Exception):
        mm.madvise(mmap.MADV_DONTNEED, start, end - start)


def compare_tensor(
    name: str, qtype: Any, stored: np.ndarray, ref: np.ndarray, *, via_f16: bool = False
) -> TensorCheck:
    """Compare a GGUF tensor's stored data with the float32 values it must encode
    (`via_f16`: first rounded to float16, as the f16 file a K-quant was made from held them)."""
    tname = qtype.name
    n_cols = int(ref.shape[-1]) if ref.ndim else 1
    ref2 = ref.reshape(-1, n_cols)
    rows = stored.reshape(ref2.shape[0], -1)
    step = max(1, CHUNK_ELEMENTS // max(1, n_cols))
    bound = None if tname in EXACT_TYPES else ERROR_BOUNDS.get(tname, DEFAULT_BOUND)
    max_err = worst = 0.0
    mismatches = 0
    with np.errstate(invalid="ignore", over="ignore"):  # a corrupted file may hold inf/NaN
        for a in range(0, ref2.shape[0], step):
            r = np.asarray(ref2[a : a + step], dtype=np.float32)
            if via_f16:  # per chunk: no second whole-tensor copy
                r = r.astype(np.float16).astype(np.float32)
            got, off, frac = _compare_chunk(name, qtype, rows[a : a + step], r, bound)
            mismatches += off
            worst = max(worst, frac)
            max_err = max(max_err, _finite_max(np.abs(got - r)))
    if bound is None:  # exact types: the share of values whose bits differ
        worst = mismatches / max(1, ref.size)
    passed = mismatches == 0 and worst <= 1.0
    return TensorCheck(name, tname, int(ref.size), max_err, bound, worst, mismatches, passed)


def _compare_chunk(
    name: str, qtype: Any, s: np.ndarray, r: np.ndarray, bound: float | None
) -> tuple[np.ndarray, int, float]:
    """(decoded float32 values, values whose bits differ, worst block error / allowed)."""
    import gguf

    tname = qtype.name
    if tname == "F32":
        got = np.asarray(s, dtype=np.float32).reshape(r.shape)
        return got, int(np.count_nonzero(got.view(np.uint32) != r.view(np.uint32))), 0.0
    if tname == "F16":
        got16 = np.asarray(s, dtype=np.float16).reshape(r.shape)
        off = np.count_nonzero(got16.view(np.uint16) != r.astype(np.float16).view(np.uint16))
        return got16.astype(np.float32), int(off), 0.0
    if tname == "BF16":
        bits = np.asarray(s).view(np.uint16).reshape(r.shape)
        got = (bits.astype(np.uint32) << 16).view(np.float32)
        return got, int(np.count_nonzero(bits != bf16_bits(r))), 0.0
    try:
        got = gguf.quants.dequantize(np.asarray(s), qtype).reshape(r.shape)
    except NotImplementedError as exc:
        raise ExportError(f"{name}: cannot dequantize {tname} ({exc})") from exc
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    err = np.abs(got - r)
    if r.shape[-1] % block == 0:
        eb = err.reshape(-1, block).max(axis=1)
        amax = np.abs(r).reshape(-1, block).max(axis=1)
    else:  # a row shorter than a block cannot happen in a valid file; judge per row
        eb, amax = err.max(axis=1), np.abs(r).max(axis=1)
    frac = eb / (float(bound or DEFAULT_BOUND) * amax + _abs_slack(tname))
    return got, 0, _finite_max(frac)


def _finite_max(a: np.ndarray) -> float:
    """Max of `a` with NaN/inf (a corrupted scale) as a huge finite number: JSON-safe."""
    return float(np.nan_to_num(a, nan=_HUGE, posinf=_HUGE).max(initial=0.0))


def verify_tensors(
    gguf_path: str | Path,
    model_dir: str | Path,
    gguf_type: str,
    *,
    progress: Progress | None = None,
) -> TensorReport:
    """Read every tensor of `gguf_path` back and compare it with `model_dir`'s checkpoint."""
    import gguf

    from spark_tui.core.export.gguf_writer import plan_tensors

    ptype = plan_type_for(gguf_type)
    rep = TensorReport(plan_type=ptype)
    plan = plan_tensors(model_dir, ptype)
    planned = plan.by_gguf_name()
    rep.n_expected = len(planned)
    # K-quant files were made from the f16 file: what llama.cpp quantized was the source
    # as the f16 file held it (F16-planned tensors rounded to float16).
    via_f16 = gguf_type.lower() != ptype
    try:
        reader = gguf.GGUFReader(str(gguf_path))
    except Exception as exc:
        raise ExportError(f"gguf cannot read {Path(gguf_path).name}: {exc}") from exc
    reader.fields.clear()  # the metadata (~3 KB per vocabulary entry) is not needed here
    in_file = {t.name: t for t in reader.tensors}
    rep.n_in_file = len(in_file)
    rep.missing = [n for n in planned if n not in in_file]
    rep.extra = [n for n in in_file if n not in planned]
    todo = [n for n in planned if n in in_file]
    report(progress, "verify tensors", 0, len(todo))
    for i, name in enumerate(todo, 1):
        t, p = in_file[name], planned[name]
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        if shape != tuple(p.shape):
            rep.wrong_shape.append(f"{name} {shape} (plan {tuple(p.shape)})")
            continue
        try:
            ref = p.source_data(plan.src)
            rounded = via_f16 and p.qtype == gguf.GGMLQuantizationType.F16
            rep.checks.append(compare_tensor(name, t.tensor_type, t.data, ref, via_f16=rounded))
        except ExportError as exc:
            rep.errors.append(str(exc))
        except ValueError as exc:  # a truncated or malformed tensor in a damaged file
            rep.errors.append(f"{name}: cannot be read back ({exc})")
        finally:
            ref = None
            _release(reader, t)
        report(progress, "verify tensors", i, len(todo))
    del reader, in_file
    return rep
