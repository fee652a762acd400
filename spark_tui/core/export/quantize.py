"""K-quants (q4_k_m, q5_k_m, q6_k) through llama.cpp's own quantizer.

The `gguf` Python package can only *de*quantize K-quants, so the quantized
files are made from our f16 GGUF by `llama_cpp.llama_model_quantize` (the same
code as the `llama-quantize` tool).  Tensors whose rows are not a multiple of
256 fall back to other types inside llama.cpp, as they do with the CLI tool.

Alternatively a user's own llama.cpp checkout can do the whole conversion:
`convert_hf_to_gguf.py` then `llama-quantize`, run as argument lists (never a
shell string).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from spark_tui.core.export.common import ExportError, Progress, atomic_output, report

# llama.cpp `enum llama_ftype` values (stable across releases).
LLAMA_FTYPES: dict[str, int] = {
    "f32": 0,
    "f16": 1,
    "q8_0": 7,
    "q4_k_m": 15,
    "q5_k_m": 17,
    "q6_k": 18,
    "bf16": 32,
}
K_QUANTS = ("q4_k_m", "q5_k_m", "q6_k")
ALL_TYPES = ("f16", "bf16", "q8_0", "q4_k_m", "q5_k_m", "q6_k")
# Approximate bits per weight of each type (for disk estimates and progress).
BITS_PER_WEIGHT: dict[str, float] = {
    "f32": 32.0,
    "f16": 16.0,
    "bf16": 16.0,
    "q8_0": 8.5,
    "q6_k": 6.56,
    "q5_k_m": 5.7,
    "q4_k_m": 4.9,
}
# The names llama-quantize / convert_hf_to_gguf.py use on their command lines.
CLI_NAMES = {
    "f16": "f16",
    "bf16": "bf16",
    "q8_0": "Q8_0",
    "q4_k_m": "Q4_K_M",
    "q5_k_m": "Q5_K_M",
    "q6_k": "Q6_K",
}


@dataclass
class QuantizeResult:
    path: Path
    qtype: str
    source: Path
    n_bytes: int
    seconds: float
    method: str  # "llama-cpp-python" or "llama.cpp checkout"


def _llama_cpp():
    try:
        import llama_cpp
    except ImportError as exc:
        raise ExportError(
            "K-quants need llama-cpp-python (the `llama_cpp` module), which is not installed; "
            'install it (see the README: built with CMAKE_ARGS="-DGGML_NATIVE=OFF"), '
            "export f16/bf16/q8_0 instead, or pass a llama.cpp checkout with --llama-cpp DIR"
        ) from exc
    with contextlib.suppress(Exception):  # keep llama.cpp's log lines out of the terminal
        from llama_cpp import _logger

        _logger.set_verbose(False)
    return llama_cpp


def quantize_gguf(
    src: str | Path,
    dst: str | Path,
    qtype: str,
    *,
    nthread: int = 0,
    progress: Progress | None = None,
    log_path: str | Path | None = None,
) -> QuantizeResult:
    """Quantize GGUF `src` (f16/bf16/f32) to `dst` of `qtype` with llama.cpp's quantizer.

    The quantizer runs in a child process: llama.cpp prints straight to the
    terminal (per-tensor warnings) and a crash in native code must not take the
    app down.  Its output goes to `log_path` (kept only when it fails).
    Progress is the growing size of the output against the expected size.
    """
    src, dst = Path(src), Path(dst)
    qtype = qtype.lower()
    if qtype not in LLAMA_FTYPES:
        raise ExportError(f"unknown quantization {qtype!r}; use one of {', '.join(ALL_TYPES)}")
    if not src.is_file():
        raise ExportError(f"{src}: the source GGUF is missing; export f16 first")
    _llama_cpp()  # a clear message now rather than a traceback in the child
    expected = max(1, int(src.stat().st_size * BITS_PER_WEIGHT[qtype] / 16.0))
    log = Path(log_path) if log_path else dst.with_name(f".{dst.name}.quantize.log")
    start = time.monotonic()
    with atomic_output(dst, need=expected, what=f"the {qtype} GGUF") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "spark_tui.core.export.quantize",
            str(src),
            str(tmp),
            qtype,
            str(nthread),
        ]
        report(progress, "quantize", 0, expected)
        with open(log, "w", encoding="utf-8") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
            try:
                while proc.poll() is None:
                    time.sleep(0.25)
                    with contextlib.suppress(OSError):
                        report(progress, "quantize", min(tmp.stat().st_size, expected), expected)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
        if proc.returncode != 0 or not tmp.is_file():
            _raise_if_disk_full(proc.returncode, tmp)
            tail = _tail(log)
            raise ExportError(
                f"llama.cpp could not quantize {src.name} to {qtype} (exit {proc.returncode}); "
                f"the source must be an f16/bf16/f32 GGUF of a supported architecture. "
                f"Last lines of {log}:\n{tail}"
            )
        report(progress, "quantize", expected, expected)
    with contextlib.suppress(FileNotFoundError):
        log.unlink()
    return QuantizeResult(
        path=dst,
        qtype=qtype,
        source=src,
        n_bytes=dst.stat().st_size,
        seconds=time.monotonic() - start,
        method="llama-cpp-python",
    )


def _raise_if_disk_full(returncode: int | None, tmp: Path) -> None:
    """A llama.cpp tool that failed while its output filled the disk: say so (as ENOSPC,
    which `atomic_output` turns into the disk-full message once the partial file is gone)."""
    from spark_tui.core.train.disk import nearly_full

    if nearly_full(tmp.parent):
        raise OSError(
            errno.ENOSPC,
            f"{os.strerror(errno.ENOSPC)} (llama.cpp exited with {returncode} as the disk filled)",
            str(tmp),
        )


def _tail(path: Path, n: int = 8) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _quantize_main(argv: list[str]) -> int:
    """Child-process entry: quantize SRC DST QTYPE [NTHREAD]; exit status 0 on success."""
    src, dst, qtype = argv[0], argv[1], argv[2]
    nthread = int(argv[3]) if len(argv) > 3 else 0
    llama_cpp = _llama_cpp()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = LLAMA_FTYPES[qtype]
    params.nthread = nthread
    return int(llama_cpp.llama_model_quantize(src.encode(), dst.encode(), params))


# ---------------------------------------------------------------------------
# the alternative: a user's llama.cpp checkout


@dataclass
class LlamaCppCheckout:
    root: Path
    converter: Path
    quantize_bin: Path | None

    @classmethod
    def find(cls, root: str | Path) -> LlamaCppCheckout:
        root = Path(root).expanduser()
        conv = root / "convert_hf_to_gguf.py"
        if not conv.is_file():
            raise ExportError(
                f"{root}: not a llama.cpp checkout (no convert_hf_to_gguf.py); "
                "clone https://github.com/ggml-org/llama.cpp and build it with cmake"
            )
        candidates = [
            root / "build" / "bin" / "llama-quantize",
            root / "build" / "llama-quantize",
            root / "llama-quantize",
        ]
        qbin = next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)
        if qbin is None and (found := shutil.which("llama-quantize")):
            qbin = Path(found)
        return cls(root, conv, qbin)


def checkout_commands(
    checkout: LlamaCppCheckout,
    model_dir: str | Path,
    out_path: str | Path,
    qtype: str,
    *,
    f16_path: str | Path | None = None,
    python: str | None = None,
) -> list[list[str]]:
    """The argument lists that make `out_path` of `qtype` from `model_dir` with a checkout."""
    qtype = qtype.lower()
    if qtype not in CLI_NAMES:
        raise ExportError(f"unknown GGUF type {qtype!r}; use one of {', '.join(ALL_TYPES)}")
    py = python or sys.executable
    out_path = Path(out_path)
    if qtype in ("f16", "bf16", "q8_0"):
        return [
            [
                py,
                str(checkout.converter),
                str(model_dir),
                "--outfile",
                str(out_path),
                "--outtype",
                qtype,
            ],
        ]
    if checkout.quantize_bin is None:
        raise ExportError(
            f"{checkout.root}: llama-quantize was not found (looked in build/bin/ and on PATH); "
            "build llama.cpp with `cmake -B build && cmake --build build --target llama-quantize`"
        )
    f16 = Path(f16_path) if f16_path else out_path.with_name(out_path.stem + "-f16.gguf")
    return [
        [py, str(checkout.converter), str(model_dir), "--outfile", str(f16), "--outtype", "f16"],
        [str(checkout.quantize_bin), str(f16), str(out_path), CLI_NAMES[qtype]],
    ]


def export_with_checkout(
    checkout_dir: str | Path,
    model_dir: str | Path,
    out_path: str | Path,
    qtype: str,
    *,
    log_path: str | Path | None = None,
    progress: Progress | None = None,
) -> QuantizeResult:
    """Convert (and quantize) with the user's llama.cpp checkout; output appears atomically."""
    checkout = LlamaCppCheckout.find(checkout_dir)
    out_path = Path(out_path)
    start = time.monotonic()
    log = Path(log_path) if log_path else out_path.with_name(out_path.name + ".log")
    with atomic_output(out_path, what=f"the {qtype} GGUF") as tmp:
        f16_tmp = tmp.with_name(tmp.name + "-f16.gguf")
        cmds = checkout_commands(checkout, model_dir, tmp, qtype, f16_path=f16_tmp)
        try:
            with open(log, "a", encoding="utf-8") as fh:
                for i, cmd in enumerate(cmds):
                    report(progress, "convert" if i == 0 else "quantize", 0, 1)
                    fh.write("$ " + " ".join(cmd) + "\n")
                    fh.flush()
                    rc = subprocess.run(
                        cmd, stdout=fh, stderr=subprocess.STDOUT, check=False
                    ).returncode
                    if rc != 0:
                        _raise_if_disk_full(rc, tmp)
                        raise ExportError(
                            f"`{Path(cmd[0]).name if i else 'convert_hf_to_gguf.py'}` failed "
                            f"(exit {rc}); see {log}"
                        )
                    report(progress, "convert" if i == 0 else "quantize", 1, 1)
        finally:
            with contextlib.suppress(FileNotFoundError):
                f16_tmp.unlink()
    return QuantizeResult(
        path=out_path,
        qtype=qtype,
        source=Path(model_dir),
        n_bytes=out_path.stat().st_size,
        seconds=time.monotonic() - start,
        method="llama.cpp checkout",
    )


if __name__ == "__main__":  # pragma: no cover - exercised through quantize_gguf
    sys.exit(_quantize_main(sys.argv[1:]))
