"""Our own HF-folder -> GGUF exporter, built on the `gguf` library.

No llama.cpp checkout is needed: the `gguf` package (GGUFWriter, the tensor
name map, SpecialVocab, numpy quantizers, Metadata) does the file format, and
this module does what llama.cpp's converter does for the catalogue's
architectures: Llama 2/3.x, TinyLlama, SmolLM2 and Mistral (GGUF arch
``llama``), Qwen2/2.5 (``qwen2``), Gemma 2 (``gemma2``) and Phi-3/3.5
(``phi3``).  What differs per architecture (layout transforms, generated RoPE
tensors, extra keys, configs llama.cpp would run differently) lives in
gguf_archs.py; the ``general.*`` metadata in gguf_meta.py; the vocabulary in
gguf_vocab.py.

`plan_tensors` is the single definition of which GGUF tensor comes from which
checkpoint tensor with which transform: the writer encodes
`PlannedTensor.source_data`, and the tensor verification re-derives each GGUF
tensor through the same call.

Tensors are streamed one at a time (header and tensor table first, then each
tensor is loaded, converted and written), so memory stays at one tensor on top
of nothing.  1-D tensors (norms, biases) and generated RoPE factors stay F32;
tied embeddings mean no ``output.weight``.  Direct outputs: f32, f16, bf16,
q8_0.  K-quants are made from the f16 file by llama.cpp's quantizer
(quantize.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spark_tui.core.export import gguf_archs, gguf_meta
from spark_tui.core.export.common import (
    ExportError,
    Progress,
    UnsupportedModelError,
    atomic_output,
    read_json_file,
    report,
)
from spark_tui.core.export.gguf_archs import (  # noqa: F401 - re-exported
    SUPPORTED_ARCHITECTURES,
    head_dim_of,
    llama3_rope_factors,
    rope_settings,
    rope_type_of,
)
from spark_tui.core.export.gguf_vocab import build_vocab, write_vocab
from spark_tui.core.export.tensor_source import TensorSource

# Types written directly by this module (K-quants go through quantize.py).
DIRECT_TYPES = ("f32", "f16", "bf16", "q8_0")
log = logging.getLogger(__name__)


@dataclass
class GGUFExport:
    """What `export_gguf` wrote."""

    path: Path
    out_type: str
    arch: str
    hf_architecture: str
    tokenizer_model: str
    tokenizer_pre: str | None
    n_tensors: int
    n_bytes: int
    n_vocab: int
    tied_embeddings: bool
    rope_scaling: str | None
    notes: list[str] = field(default_factory=list)
    n_params: int = 0
    size_label: str | None = None
    general: dict[str, Any] = field(default_factory=dict)  # the general.* keys written


# ---------------------------------------------------------------------------
# config


def read_config(model_dir: Path) -> dict[str, Any]:
    return read_json_file(
        Path(model_dir) / "config.json",
        "export needs a Hugging Face model folder "
        "(config.json, *.safetensors, tokenizer files); merge the run first",
    )


def gguf_arch_for(config: dict[str, Any], source: str = "config.json") -> tuple[str, str]:
    """(HF architecture, GGUF arch) or UnsupportedModelError naming what is supported
    and the routes that remain."""
    archs = config.get("architectures") or []
    for a in archs:
        if a in SUPPORTED_ARCHITECTURES:
            return a, SUPPORTED_ARCHITECTURES[a]
    found = ", ".join(archs) or f"model_type {config.get('model_type')!r}"
    raise UnsupportedModelError(
        f"{source}: GGUF export supports {', '.join(SUPPORTED_ARCHITECTURES)} "
        f"({gguf_archs.FAMILIES}); this model is {found}. "
        f"To deploy it anyway, {gguf_archs.other_routes(archs[0] if archs else None)}."
    )


# ---------------------------------------------------------------------------
# tensors


def _permute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo HF's rotate-half Q/K layout into the interleaved layout llama.cpp uses."""
    shape = w.shape
    return w.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def _natural_key(name: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


@dataclass
class PlannedTensor:
    gguf_name: str
    hf_name: str | None  # None for generated tensors (rope_freqs)
    shape: tuple[int, ...]
    qtype: Any  # gguf.GGMLQuantizationType
    permute_heads: int = 0
    data: np.ndarray | None = None  # generated tensors only
    offset: float = 0.0  # added to every value (Gemma's norms: HF's w means 1 + w)

    def source_data(self, src: TensorSource) -> np.ndarray:
        """The float32 values this GGUF tensor holds before encoding (layout transforms
        applied): what the writer encodes and what verification compares against."""
        if self.data is not None:
            return self.data
        data = src.load(self.hf_name)  # type: ignore[arg-type]
        if self.permute_heads:
            data = _permute_qk(data, self.permute_heads)
        if self.offset:
            data = data + np.float32(self.offset)
        return data


def _choose_type(gguf_mod: Any, out_type: str, shape: tuple[int, ...], name: str) -> Any:
    Q = gguf_mod.GGMLQuantizationType
    if len(shape) <= 1 or name.endswith("_norm.weight") or out_type == "f32":
        return Q.F32
    if out_type == "f16":
        return Q.F16
    if out_type == "bf16":
        return Q.BF16
    if out_type == "q8_0":
        block = gguf_mod.GGML_QUANT_SIZES[Q.Q8_0][0]
        return Q.Q8_0 if shape[-1] % block == 0 else Q.F16
    raise ExportError(f"unknown GGUF type {out_type!r}; direct types: {', '.join(DIRECT_TYPES)}")


def _encode(gguf_mod: Any, data: np.ndarray, qtype: Any) -> np.ndarray:
    Q = gguf_mod.GGMLQuantizationType
    if qtype == Q.F32:
        return np.ascontiguousarray(data, dtype=np.float32)
    if qtype == Q.F16:
        return np.ascontiguousarray(data.astype(np.float16))
    return gguf_mod.quants.quantize(np.ascontiguousarray(data, dtype=np.float32), qtype)


def _nbytes(gguf_mod: Any, shape: tuple[int, ...], qtype: Any) -> tuple[tuple[int, ...], Any, int]:
    """(shape to declare, numpy dtype to declare, bytes) for a planned tensor."""
    Q = gguf_mod.GGMLQuantizationType
    n = int(np.prod(shape)) if shape else 1
    if qtype == Q.F32:
        return shape, np.float32, n * 4
    if qtype == Q.F16:
        return shape, np.float16, n * 2
    byte_shape = gguf_mod.quant_shape_to_byte_shape(shape, qtype)
    return byte_shape, np.uint8, int(np.prod(byte_shape))


@dataclass
class TensorPlan:
    """Everything `export_gguf` decides before writing: the shared source of truth for
    the writer and for the tensor verification (which re-derives each GGUF tensor from
    the safetensors the same way)."""

    model_dir: Path
    config: dict[str, Any]
    hf_arch: str
    arch_name: str
    out_type: str
    src: TensorSource
    tensors: list[PlannedTensor]
    n_vocab: int
    n_layer: int
    n_head: int
    n_kv: int
    head_dim: int
    theta: float
    rope_type: str
    scaling: dict[str, Any]
    tied: bool
    notes: list[str] = field(default_factory=list)

    def by_gguf_name(self) -> dict[str, PlannedTensor]:
        return {p.gguf_name: p for p in self.tensors}

    @property
    def n_params(self) -> int:
        """Parameters as llama.cpp counts them for the size label (every tensor written)."""
        return sum(int(np.prod(p.shape)) for p in self.tensors)


def plan_tensors(model_dir: str | Path, out_type: str = "f16") -> TensorPlan:
    """Map every checkpoint tensor to its GGUF name, type and layout transform."""
    import gguf

    model_dir = Path(model_dir)
    out_type = out_type.lower()
    config = read_config(model_dir)
    hf_arch, arch_name = gguf_arch_for(config, str(model_dir / "config.json"))
    arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch_name)
    notes: list[str] = []

    n_layer = int(config["num_hidden_layers"])
    n_head = int(config["num_attention_heads"])
    n_kv = int(config.get("num_key_value_heads") or n_head)
    head_dim = head_dim_of(config)
    theta, scaling = rope_settings(config)
    rope_type = rope_type_of(scaling)
    notes.extend(
        gguf_archs.check_config(hf_arch, arch_name, config, str(model_dir / "config.json"))
    )

    src = TensorSource(model_dir)
    names = src.names()
    embed_name = "model.embed_tokens.weight"
    if embed_name not in names:
        raise ExportError(f"{model_dir}: no {embed_name} in the weights; is this a causal LM?")
    n_vocab = src.shape(embed_name)[0]
    tied = bool(config.get("tie_word_embeddings", False)) or "lm_head.weight" not in names

    tmap = gguf.get_tensor_name_map(arch, n_layer)
    plan: list[PlannedTensor] = []
    for hf_name in sorted(names, key=_natural_key):
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        if hf_name == "lm_head.weight" and tied:
            continue
        gname = tmap.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gname is None:
            raise UnsupportedModelError(
                f"{model_dir}: tensor {hf_name!r} has no GGUF counterpart for arch {arch_name}; "
                "the checkpoint has extra modules the exporter does not know; "
                f"{gguf_archs.other_routes(hf_arch)}"
            )
        shape = src.shape(hf_name)
        permute, offset = gguf_archs.tensor_transform(arch_name, hf_name, n_head, n_kv)
        qtype = _choose_type(gguf, out_type, shape, gname)
        plan.append(PlannedTensor(gname, hf_name, shape, qtype, permute, offset=offset))
    if tied:
        notes.append("tied embeddings: no output.weight (llama.cpp reuses token_embd)")
    for gname, data in gguf_archs.generated_tensors(arch_name, config, gguf):
        plan.append(
            PlannedTensor(gname, None, tuple(data.shape), gguf.GGMLQuantizationType.F32, data=data)
        )
    if note := gguf_archs.generated_note(arch_name, config):
        notes.append(note)
    fallback = [
        p.gguf_name
        for p in plan
        if out_type == "q8_0" and len(p.shape) > 1 and p.qtype != gguf.GGMLQuantizationType.Q8_0
    ]
    if fallback:
        notes.append(f"{len(fallback)} tensor(s) kept in f16 (rows not divisible by 32)")
    return TensorPlan(
        model_dir=model_dir,
        config=config,
        hf_arch=hf_arch,
        arch_name=arch_name,
        out_type=out_type,
        src=src,
        tensors=plan,
        n_vocab=n_vocab,
        n_layer=n_layer,
        n_head=n_head,
        n_kv=n_kv,
        head_dim=head_dim,
        theta=theta,
        rope_type=rope_type,
        scaling=scaling,
        tied=tied,
        notes=notes,
    )


# ---------------------------------------------------------------------------
# main entry point


def export_gguf(
    model_dir: str | Path,
    out_path: str | Path,
    out_type: str = "f16",
    *,
    name: str | None = None,
    basename: str | None = None,
    finetune: str | None = None,
    license: str | None = None,  # noqa: A002 - the GGUF key's own name
    base_model: str | list[str] | None = None,
    size_label: str | None = None,
    progress: Progress | None = None,
) -> GGUFExport:
    """Write `model_dir` (a HF folder of a supported architecture) as a GGUF of `out_type`.

    general.* metadata: `name` (default: the model card's / folder's name),
    `basename` (default: guessed from the base model or name, e.g. "SmolLM2"),
    `finetune` (e.g. the run name), `license` (default: the model card's
    ``license:``), `base_model` (Hub id(s) the fine-tune started from; default:
    the model card's ``base_model:``), `size_label` (default: from the parameter
    count, as llama.cpp computes it).  Explicit values win over the folder's.
    The file appears under `out_path` only once complete.
    """
    import gguf

    model_dir = Path(model_dir)
    out_path = Path(out_path)
    out_type = out_type.lower()
    if out_type not in DIRECT_TYPES:
        raise ExportError(
            f"GGUF type {out_type!r} cannot be written directly; direct types: "
            f"{', '.join(DIRECT_TYPES)} (K-quants are made from the f16 file by llama.cpp)"
        )
    tp = plan_tensors(model_dir, out_type)
    plan, src = tp.tensors, tp.src
    vocab = build_vocab(model_dir, tp.n_vocab, gguf)
    meta = gguf_meta.build_metadata(
        model_dir,
        tp.n_params,
        name=name,
        basename=basename,
        finetune=finetune,
        license=license,
        base_model=base_model,
        label=size_label,
    )

    ftype = {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "bf16": gguf.LlamaFileType.MOSTLY_BF16,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    }[out_type]

    total = len(plan)
    infos = [_nbytes(gguf, p.shape, p.qtype) for p in plan]
    # Tensor data + the metadata (vocabulary strings and scores) + alignment padding.
    need = sum(n for _, _, n in infos) + 16 * tp.n_vocab + 32 * total + 1024**2
    with atomic_output(out_path, need=need, what="the GGUF") as tmp:
        gw = gguf.GGUFWriter(str(tmp), tp.arch_name)
        try:
            gw.add_type(gguf.GGUFType.MODEL)
            gguf_meta.write_general(gw, meta)
            gguf_archs.write_hparams(gw, gguf, tp.arch_name, tp.config, tp.n_layer)
            gw.add_vocab_size(tp.n_vocab)
            gw.add_file_type(int(ftype))
            gw.add_quantization_version(gguf.GGML_QUANT_VERSION)
            write_vocab(gw, gguf, model_dir, vocab, tp.n_vocab)
            gguf_archs.write_tokenizer_extras(gw, tp.arch_name)
            for p, (shape, dtype, nbytes) in zip(plan, infos, strict=True):
                raw = (
                    None
                    if p.qtype in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16)
                    else p.qtype
                )
                gw.add_tensor_info(p.gguf_name, shape, np.dtype(dtype), nbytes, raw_dtype=raw)
            gw.write_header_to_file()
            gw.write_kv_data_to_file()
            gw.write_ti_data_to_file()
            report(progress, "write", 0, total)
            for i, p in enumerate(plan, 1):
                data = p.source_data(src)
                enc = _encode(gguf, data, p.qtype)
                gw.write_tensor_data(enc)
                del data, enc
                report(progress, "write", i, total)
        finally:
            gw.close()
    return GGUFExport(
        path=out_path,
        out_type=out_type,
        arch=tp.arch_name,
        hf_architecture=tp.hf_arch,
        tokenizer_model=vocab.model,
        tokenizer_pre=vocab.pre,
        n_tensors=total,
        n_bytes=out_path.stat().st_size,
        n_vocab=tp.n_vocab,
        tied_embeddings=tp.tied,
        rope_scaling=None if tp.rope_type == "default" else tp.rope_type,
        notes=tp.notes,
        n_params=tp.n_params,
        size_label=meta.size_label,
        general=gguf_meta.general_keys(meta),
    )


def iter_gguf_metadata(path: str | Path) -> Iterator[tuple[str, Any]]:
    """(key, value) pairs of a GGUF file's metadata (small values only; arrays as lengths)."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    for key, fieldv in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        if fieldv.types and fieldv.types[0] == gguf.GGUFValueType.ARRAY:
            yield key, len(fieldv.data)
        else:
            yield key, fieldv.contents()
