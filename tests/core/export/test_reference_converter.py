"""Our GGUF writer against llama.cpp's own converter (convert_hf_to_gguf.py).

Each model is converted to f16 by both; every tensor (name, shape, type, bytes)
and every metadata key (types and full values: token lists, scores, token types,
merges) must be equal, except the descriptive ``general.*`` keys and keys only we
write whose value is llama.cpp's default (each with the reason below).  The converter comes from the llama-cpp-python
sdist that scripts/setup.sh keeps in the wheel cache (see reference_converter.py).
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest
import reference_converter as rc

pytestmark = pytest.mark.slow

# Metadata that may differ (in value, or be present in only one file), and why.
# general.* is descriptive: llama.cpp derives name / basename / finetune / size label /
# version from the *folder name* with its own heuristics ("SmolLM2-135M-Instruct-v1" ->
# "SmolLM2 135M Instruct v1", "SmolLM2", "Instruct", "135M", "v1"), and a run's merged
# folder name says nothing of the sort; llama.cpp never reads them to run a model.  The
# general keys that do matter must still be equal.
DESCRIPTIVE_PREFIX = "general."
GENERAL_KEYS_THAT_MATTER = {
    "general.architecture",
    "general.type",
    "general.file_type",
    "general.quantization_version",
    "general.alignment",
}
# Keys only we write: harmless when the value is the one llama.cpp assumes when the key is
# absent (llama-model.cpp: head length n_embd / n_head, n_rot = head length, RoPE base
# 10000; llama-vocab.cpp: vocab size = number of tokens), i.e. an explicit default.
# tokenizer.ggml.add_bos_token / add_eos_token: we always write what the HF tokenizer
# really does (measured by encoding a text); the reference writes them only when a config
# file states them, leaving llama.cpp's default otherwise (true for SentencePiece: so for
# a tokenizer that adds no BOS, as the spm fixture's, llama.cpp would add one that
# training never saw).  Allowed when only ours has them and they match the HF tokenizer.
HF_FLAGS = ("tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token")


def _llama_cpp_default(key: str, meta: dict) -> object:
    """What llama.cpp uses when `key` is absent from a file with metadata `meta`, or KeyError."""

    def v(k: str) -> object:
        return meta[k][1]

    arch = v("general.architecture")
    head_dim = int(v(f"{arch}.embedding_length")) // int(v(f"{arch}.attention.head_count"))
    if f"{arch}.attention.key_length" in meta:
        head_dim_k = int(v(f"{arch}.attention.key_length"))  # n_rot defaults to it
    else:
        head_dim_k = head_dim
    if key in (f"{arch}.attention.key_length", f"{arch}.attention.value_length"):
        return head_dim
    if key == f"{arch}.rope.dimension_count":
        return head_dim_k
    if key == f"{arch}.rope.freq_base":
        return 10000.0
    if key == f"{arch}.vocab_size":
        return len(v("tokenizer.ggml.tokens"))
    raise KeyError(key)


# fixture -> the pre-tokenizer name llama.cpp has for that tokenizer family (None: not
# byte-level BPE).  The fixtures' tokenizers are trained here, so llama.cpp's table of
# tokenizer hashes cannot know them (the hash covers token ids): the reference is run
# with that name as its fallback for an unknown hash, and everything else it computes
# itself.  The default model is the published SmolLM2 vocabulary: no fallback allowed.
MODELS: dict[str, tuple[str | None, bool]] = {
    # fixture: (family pre-tokenizer, hash unknown to llama.cpp)
    "default_model_dir": ("smollm", False),
    "llama3_dir": ("llama-bpe", True),
    "qwen2_dir": ("qwen2", True),
    "llama32_dir": ("llama-bpe", True),
    "spm_dir": (None, False),
    "mistral_dir": (None, False),
    "gemma2_dir": (None, False),
    "phi3_dir": (None, False),
}


@pytest.fixture(scope="session")
def reference(tmp_path_factory) -> rc.ReferenceConverter:
    sdist = rc.find_sdist()
    if sdist is None:
        where = os.environ.get(rc.SDIST_ENV) or f"{rc.wheel_cache()}/llama_cpp_python-*.tar.gz"
        pytest.skip(
            f"no llama-cpp-python sdist (it carries llama.cpp's converter) at {where}; "
            f"scripts/setup.sh keeps one in the wheel cache (or set ${rc.SDIST_ENV})"
        )
    return rc.extract_converter(sdist, tmp_path_factory.mktemp("llama.cpp"))


def _hf_flags(model_dir: Path) -> dict[str, bool]:
    """Whether the folder's HF tokenizer itself adds BOS / EOS to an encoding."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    ids = tok("Hello")["input_ids"]
    plain = tok("Hello", add_special_tokens=False)["input_ids"]
    extra = len(ids) > len(plain)
    return {
        HF_FLAGS[0]: extra and tok.bos_token_id is not None and ids[0] == tok.bos_token_id,
        HF_FLAGS[1]: extra and tok.eos_token_id is not None and ids[-1] == tok.eos_token_id,
    }


def _problems(diff: rc.GGUFDiff, ours: dict, ref: dict, hf_flags: dict[str, bool]) -> list[str]:
    """The metadata differences that are not explained away (see above)."""

    def descriptive(k: str) -> bool:
        return k.startswith(DESCRIPTIVE_PREFIX) and k not in GENERAL_KEYS_THAT_MATTER

    out = []
    for k in diff.only_ours:
        try:
            default = hf_flags[k] if k in hf_flags else _llama_cpp_default(k, ours)
        except KeyError:
            default = KeyError
        if not descriptive(k) and ours[k][1] != default:
            out.append(f"only ours: {k} = {rc.short(ours[k][1])!r}")
    out += [
        f"only reference: {k} = {rc.short(ref[k][1])!r}"
        for k in diff.only_ref
        if not descriptive(k)
    ]
    out += [
        f"{k}: ours {a!r}, reference {b!r}"
        for k, (a, b) in diff.values.items()
        if not descriptive(k)
    ]
    return out


@pytest.mark.parametrize("fixture", list(MODELS))
def test_matches_llama_cpp_converter(fixture, request, reference, tmp_path):
    from spark_tui.core.export.gguf_writer import export_gguf

    model_dir: Path = request.getfixturevalue(fixture)
    family, trained_vocab = MODELS[fixture]
    ref_input = rc.as_transformers4_folder(model_dir, tmp_path / "ref-input")
    ref, fallback_used = reference.convert(
        ref_input, tmp_path / "ref.gguf", "f16", pre_fallback=family or "default"
    )
    assert fallback_used == trained_vocab, "llama.cpp's tokenizer hash table answered unexpectedly"
    ours = export_gguf(model_dir, tmp_path / "ours.gguf", "f16")
    diff = rc.compare_gguf(ours.path, ref)

    ours_meta, ref_meta = rc.read_metadata(ours.path), rc.read_metadata(ref)
    problems = [f"tensor only in ours: {n}" for n in diff.tensors_only_ours]
    problems += [f"tensor only in the reference: {n}" for n in diff.tensors_only_ref]
    problems += [f"tensor {n}: {what}" for n, what in diff.tensors.items()]
    problems += _problems(diff, ours_meta, ref_meta, _hf_flags(model_dir))
    assert diff.n_tensors > 0
    assert not problems, "differs from llama.cpp's converter:\n" + "\n".join(problems)
    pre = ref_meta.get("tokenizer.ggml.pre", (None, None))[1]
    assert pre == (family or "default")
    assert ours.tokenizer_pre == pre


def test_pre_tokenizer_hashes_agree_with_llama_cpp(reference):
    """Our probe text and hash table are llama.cpp's (a subset: the families we export)."""
    from spark_tui.core.export import gguf_vocab

    src = (reference.root / "conversion" / "base.py").read_text(encoding="utf-8")
    if "def get_vocab_base_pre" not in src:  # older layouts kept it in the script
        src = reference.script.read_text(encoding="utf-8")
    chktxt = re.search(r"^\s*chktxt = (.+)$", src, re.M)
    assert chktxt, "convert_hf_to_gguf no longer defines chktxt"
    assert gguf_vocab.PRE_TOKENIZER_PROBE == ast.literal_eval(chktxt.group(1))
    table = dict(
        re.findall(r'chkhsh == "([0-9a-f]{64})":\s*\n(?:\s*#[^\n]*\n)*\s*res = "([^"]+)"', src)
    )
    assert table, "could not read llama.cpp's pre-tokenizer hash table"
    for chkhsh, name in gguf_vocab.PRE_TOKENIZER_HASHES.items():
        assert table.get(chkhsh) == name, f"{chkhsh}: ours {name}, llama.cpp {table.get(chkhsh)}"
    families = set(gguf_vocab.PRE_TOKENIZER_HASHES.values())
    assert families == set(gguf_vocab.SUPPORTED_PRE_TOKENIZERS)
