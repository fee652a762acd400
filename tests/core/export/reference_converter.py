"""llama.cpp's own HF -> GGUF converter as a reference to test our exporter against.

The llama-cpp-python source distribution vendors llama.cpp, including
``convert_hf_to_gguf.py``, its ``conversion/`` package and the matching
``gguf-py`` (which can differ from the installed ``gguf`` package).
``scripts/setup.sh`` keeps that sdist in the wheel cache; this module finds it,
extracts only those parts and runs the converter in a subprocess.

Finding the sdist: ``$SPARK_TUI_LLAMA_CPP_SDIST``, else
``llama_cpp_python-<version>.tar.gz`` in ``$WHEEL_CACHE`` (default
``$XDG_CACHE_HOME/spark-tui/wheels``), preferring the installed llama-cpp-python
version.  ``find_sdist`` returns None when there is none (tests skip then).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

SDIST_ENV = "SPARK_TUI_LLAMA_CPP_SDIST"
_VENDOR = "vendor/llama.cpp/"
# What the converter needs from the vendored llama.cpp tree (its imports are
# torch / transformers / numpy / sentencepiece from the venv besides these).
_WANTED = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/gguf/")
FALLBACK_MARK = "spark-tui: reference pre-tokenizer fallback used"

# Runs the converter unchanged, except that when llama.cpp's pre-tokenizer table
# does not know the tokenizer's hash (always the case for the tiny tokenizers the
# fixtures train: the hash covers token *ids*, so only the exact published
# vocabularies are known) it answers with the name given in the environment
# instead of refusing.  The name is the one the same pre-tokenizer has in
# llama.cpp for the real model family; the test asserts the fallback was not
# needed for real models (the default model).
_RUNNER = """\
import os, runpy, sys
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
from conversion import base
_orig = base.TextModel.get_vocab_base_pre
def _pre(self, tokenizer):
    try:
        return _orig(self, tokenizer)
    except NotImplementedError:
        print({mark!r}, file=sys.stderr)
        return os.environ["SPARK_TUI_REF_PRE_FALLBACK"]
base.TextModel.get_vocab_base_pre = _pre
sys.argv = [os.path.join(here, "convert_hf_to_gguf.py")] + sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


class ReferenceConverterError(RuntimeError):
    """The reference converter failed; the message carries its output."""


@dataclass
class ReferenceConverter:
    root: Path  # the extracted vendor/llama.cpp folder

    @property
    def script(self) -> Path:
        return self.root / "convert_hf_to_gguf.py"

    @property
    def gguf_py(self) -> Path:
        return self.root / "gguf-py"

    def convert(
        self,
        model_dir: Path,
        out: Path,
        outtype: str = "f16",
        *,
        pre_fallback: str | None = None,
        timeout: float = 600,
    ) -> tuple[Path, bool]:
        """Convert `model_dir` to `out`; returns (out, whether the pre fallback was used)."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(self.gguf_py)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        )
        env.pop("NO_LOCAL_GGUF", None)
        script = self.script
        if pre_fallback is not None:
            script = self.root / "spark_tui_reference_runner.py"
            script.write_text(_RUNNER.format(mark=FALLBACK_MARK), encoding="utf-8")
            env["SPARK_TUI_REF_PRE_FALLBACK"] = pre_fallback
        cmd = [sys.executable, str(script), str(model_dir), "--outtype", outtype]
        cmd += ["--outfile", str(out)]
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stdout + proc.stderr)[-4000:]
            raise ReferenceConverterError(
                f"convert_hf_to_gguf.py failed ({proc.returncode}):\n{tail}"
            )
        return out, FALLBACK_MARK in proc.stderr


def as_transformers4_folder(model_dir: Path, dest: Path) -> Path:
    """`model_dir` with the tokenizer_config.json transformers 4 (and so every Hub repo) has.

    transformers 5 keeps the added tokens only in tokenizer.json, while llama.cpp's
    SentencePiece path reads them (and their special flag) only from
    tokenizer_config.json's ``added_tokens_decoder`` or added_tokens.json.  On a folder
    saved by transformers 5 the reference therefore misses every added token (Gemma's
    turn markers become NORMAL, an added ``<mask>`` padding).  This returns a folder of
    links to `model_dir`'s files with ``added_tokens_decoder`` written back, so the
    reference sees the tokenizer transformers loads; `model_dir` itself if nothing is
    missing.
    """
    import json

    config_path = model_dir / "tokenizer_config.json"
    tj_path = model_dir / "tokenizer.json"
    if not config_path.is_file() or not tj_path.is_file():
        return model_dir
    config = json.loads(config_path.read_text(encoding="utf-8"))
    added = json.loads(tj_path.read_text(encoding="utf-8")).get("added_tokens") or []
    if "added_tokens_decoder" in config or not added:
        return model_dir
    keys = ("content", "lstrip", "normalized", "rstrip", "single_word", "special")
    config["added_tokens_decoder"] = {
        str(t["id"]): {k: t[k] for k in keys if k in t} for t in added
    }
    dest.mkdir(parents=True, exist_ok=True)
    for f in model_dir.iterdir():
        if f.name != config_path.name:
            (dest / f.name).symlink_to(f.resolve())
    (dest / config_path.name).write_text(json.dumps(config, indent=2), encoding="utf-8")
    return dest


def _installed_llama_cpp_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        return None


def wheel_cache() -> Path:
    env = os.environ.get("WHEEL_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "spark-tui" / "wheels"


def find_sdist() -> Path | None:
    """The llama-cpp-python sdist to take the converter from, or None."""
    env = os.environ.get(SDIST_ENV)
    if env:
        p = Path(env).expanduser()
        return p if p.is_file() else None
    cache = wheel_cache()
    version = _installed_llama_cpp_version()
    if version:
        exact = cache / f"llama_cpp_python-{version}.tar.gz"
        if exact.is_file():
            return exact
    found = sorted(cache.glob("llama_cpp_python-*.tar.gz"))
    return found[-1] if found else None


def extract_converter(sdist: Path, dest: Path) -> ReferenceConverter:
    """Extract only the converter, its `conversion/` package and `gguf-py` into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist, "r:*") as tar:
        members = []
        for m in tar.getmembers():
            parts = PurePosixPath(m.name).parts
            rel = "/".join(parts[1:])  # strip "llama_cpp_python-X.Y.Z/"
            if not rel.startswith(_VENDOR) or not (m.isfile() or m.isdir()):
                continue
            inner = rel[len(_VENDOR) :]
            if not any(inner == w or inner.startswith(w) for w in _WANTED):
                continue
            m.name = inner
            members.append(m)
        if not any(m.name == "convert_hf_to_gguf.py" for m in members):
            raise ReferenceConverterError(f"{sdist}: no {_VENDOR}convert_hf_to_gguf.py inside")
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
            tar.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - old interpreters; the sdist comes from PyPI
            tar.extractall(dest, members=members)
    return ReferenceConverter(dest)


# ---------------------------------------------------------------------------
# comparing two GGUF files


@dataclass
class GGUFDiff:
    """Where two GGUF files differ (empty lists / dicts: identical)."""

    only_ours: list[str]  # metadata keys
    only_ref: list[str]
    values: dict[str, tuple[object, object]]  # key -> (ours, reference), shortened
    tensors_only_ours: list[str]
    tensors_only_ref: list[str]
    tensors: dict[str, str]  # name -> what differs
    n_tensors: int
    n_keys: int

    def keys_differing(self) -> set[str]:
        return set(self.only_ours) | set(self.only_ref) | set(self.values)


def short(v: object) -> object:
    if isinstance(v, list) and len(v) > 8:
        return f"list[{len(v)}] {v[:4]!r}..."
    if isinstance(v, str) and len(v) > 200:
        return v[:200] + "..."
    return v


def read_metadata(path: Path) -> dict[str, tuple[tuple[int, ...], object]]:
    """key -> (value types, full value) of every metadata key (GGUF.* header fields left out)."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    out: dict[str, tuple[tuple[int, ...], object]] = {}
    for key, f in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        out[key] = (tuple(int(t) for t in f.types), f.contents())
    return out


def _first_difference(a: object, b: object) -> str:
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"lengths {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return f"first at [{i}]: {x!r} vs {y!r}"
    return f"{short(a)!r} vs {short(b)!r}"


def compare_gguf(ours: Path, ref: Path) -> GGUFDiff:
    """Every metadata key (types and full values) and every tensor (shape, type, bytes)."""
    import gguf
    import numpy as np

    mo, mr = read_metadata(ours), read_metadata(ref)
    values: dict[str, tuple[object, object]] = {}
    for key in sorted(mo.keys() & mr.keys()):
        (to, vo), (tr, vr) = mo[key], mr[key]
        if to != tr:
            values[key] = (f"types {to}", f"types {tr}")
        elif vo != vr:
            values[key] = (short(vo), _first_difference(vo, vr))
    ro, rr = gguf.GGUFReader(str(ours)), gguf.GGUFReader(str(ref))
    to_ = {t.name: t for t in ro.tensors}
    tr_ = {t.name: t for t in rr.tensors}
    tdiff: dict[str, str] = {}
    for name in sorted(to_.keys() & tr_.keys()):
        a, b = to_[name], tr_[name]
        what = []
        if list(a.shape) != list(b.shape):
            what.append(f"shape {list(a.shape)} vs {list(b.shape)}")
        if a.tensor_type != b.tensor_type:
            what.append(f"type {a.tensor_type.name} vs {b.tensor_type.name}")
        if not what:
            da = np.ascontiguousarray(a.data).reshape(-1).view(np.uint8)
            db = np.ascontiguousarray(b.data).reshape(-1).view(np.uint8)
            if not np.array_equal(da, db):
                n = int(np.count_nonzero(da != db)) if da.shape == db.shape else -1
                what.append(f"data differs ({n} of {da.size} bytes)")
        if what:
            tdiff[name] = "; ".join(what)
    return GGUFDiff(
        only_ours=sorted(mo.keys() - mr.keys()),
        only_ref=sorted(mr.keys() - mo.keys()),
        values=values,
        tensors_only_ours=sorted(to_.keys() - tr_.keys()),
        tensors_only_ref=sorted(tr_.keys() - to_.keys()),
        tensors=tdiff,
        n_tensors=len(tr_),
        n_keys=len(mr),
    )
