"""Tokenizer -> GGUF vocabulary: tokens, scores, types, merges, pre-tokenizer name.

llama.cpp must split and merge text exactly like the Hugging Face tokenizer the
model was trained with, so this module reads the tokenizer the way llama.cpp's
own converter does: SentencePiece vocabularies (``tokenizer.model``, or a
``tokenizer.json`` BPE with byte fallback) become ``"llama"`` with scores;
byte-level BPE becomes ``"gpt2"`` with merges and the pre-tokenizer name
llama.cpp knows it by (by the converter's own tokenizer hash for the published
vocabularies, else by the tokenizer.json pre-tokenizer).  Added tokens, padding
rows and their scores follow the converter too; tests/core/export/
test_reference_converter.py compares whole files with it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spark_tui.core.export.common import ExportError, UnsupportedModelError

SUPPORTED_PRE_TOKENIZERS = ("llama-bpe", "qwen2", "smollm", "gpt-2")

# Pre-tokenizer split regexes as they appear in tokenizer.json files.
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_SPLIT_NAMES = {_LLAMA3_SPLIT: "llama-bpe", _QWEN2_SPLIT: "qwen2"}

# llama.cpp's converter names a byte-level BPE pre-tokenizer by the sha256 of
# str(tokenizer.encode(PROBE)): the ids of a fixed text that exercises whitespace,
# digit runs, emoji, scripts and contractions.  Because the hash covers token ids,
# it identifies the *published vocabularies* (and llama.cpp's whole handling of
# that family, e.g. smollm keeps spaces on detokenizing where gpt-2 cleans them),
# not the pre-tokenizer alone.  So a tokenizer whose hash is known gets exactly
# the reference's name; one whose vocabulary llama.cpp has never seen (trained or
# extended here; the reference refuses those) is recognised by its tokenizer.json
# pre-tokenizer instead.  The probe and hashes are llama.cpp's (only the families
# we export); tests/core/export/test_reference_converter.py checks them against it.
PRE_TOKENIZER_PROBE = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple "
    "emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 "
    "កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български "
    "''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not "
    "sure I'll make it, 'D you like some tea? We'Ve a'lL"
)
PRE_TOKENIZER_HASHES: dict[str, str] = {
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",  # Llama 3
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",  # Qwen1.5/2/2.5
    "d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c": "qwen2",  # Qwen3-Embedding
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",  # SmolLM 1/2
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",  # GPT-2
    "0fe1cf6eda062318a1af7270f3331a85c539a01778ff948e24388e949c5282f4": "gpt-2",  # ruGPT3XL
}
log = logging.getLogger(__name__)


@dataclass
class VocabInfo:
    model: str  # "llama" (SentencePiece) or "gpt2" (byte-level BPE)
    pre: str | None
    tokens: list[str]
    scores: list[float] | None
    types: list[int]
    merges: list[str]
    add_bos: bool
    add_eos: bool


# ---------------------------------------------------------------------------
# vocabulary


def _load_tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(model_dir))
    except Exception as exc:  # transformers raises many types here
        raise ExportError(
            f"{model_dir}: cannot load the tokenizer ({exc}); the folder must hold "
            "tokenizer.json / tokenizer_config.json (or tokenizer.model)"
        ) from exc


def _tokenizer_json(model_dir: Path) -> dict[str, Any] | None:
    path = Path(model_dir) / "tokenizer.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _flatten_pretok(pt: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not pt:
        return []
    if pt.get("type") == "Sequence":
        out: list[dict[str, Any]] = []
        for p in pt.get("pretokenizers", []):
            out.extend(_flatten_pretok(p))
        return out
    return [pt]


def pre_tokenizer_hash(tok: Any) -> str:
    """The hash llama.cpp's converter identifies a BPE tokenizer by (see PRE_TOKENIZER_PROBE)."""
    return hashlib.sha256(str(tok.encode(PRE_TOKENIZER_PROBE)).encode()).hexdigest()


def pre_tokenizer_from_hash(tok: Any) -> str | None:
    """The reference's pre-tokenizer name for a published vocabulary we support, else None."""
    return PRE_TOKENIZER_HASHES.get(pre_tokenizer_hash(tok))


def detect_pre_tokenizer(tj: dict[str, Any], tok: Any = None) -> str:
    """llama.cpp's pre-tokenizer name for a byte-level BPE tokenizer.

    With the loaded tokenizer `tok`, a vocabulary llama.cpp knows by its hash gets
    the reference's name; otherwise the tokenizer.json pre-tokenizer decides.
    """
    structural = _pre_from_structure(tj)
    known = pre_tokenizer_from_hash(tok) if tok is not None else None
    if known is not None:
        if structural is not None and structural != known:
            log.warning(
                "tokenizer.json's pre-tokenizer looks like %r but the vocabulary is %r's; "
                "writing %r as llama.cpp's converter does",
                structural,
                known,
                known,
            )
        return known
    if structural is not None:
        return structural
    raise UnsupportedModelError(
        f"tokenizer.json: pre-tokenizer {json.dumps(tj.get('pre_tokenizer'))[:300]} is not one "
        f"the GGUF exporter recognises ({', '.join(SUPPORTED_PRE_TOKENIZERS)}); llama.cpp would "
        "split text differently from Hugging Face. Use a llama.cpp checkout for this model."
    )


def _pre_from_structure(tj: dict[str, Any]) -> str | None:
    parts = _flatten_pretok(tj.get("pre_tokenizer"))
    kinds = [p.get("type") for p in parts]
    if kinds == ["Split", "ByteLevel"] and not parts[1].get("use_regex", True):
        pattern = (parts[0].get("pattern") or {}).get("Regex")
        if pattern in _SPLIT_NAMES:
            return _SPLIT_NAMES[pattern]
    if (
        kinds == ["Digits", "ByteLevel"]
        and parts[0].get("individual_digits")
        and parts[1].get("use_regex", True)
    ):
        return "smollm"
    if kinds == ["ByteLevel"] and parts[0].get("use_regex", True):
        return "gpt-2"  # llama.cpp's name for the GPT-2 split regex
    return None


def _special_flags(tok: Any) -> tuple[bool, bool]:
    """Whether the HF tokenizer adds BOS / EOS on its own (what llama.cpp must mimic)."""
    ids = tok("a", add_special_tokens=True)["input_ids"]
    plain = tok("a", add_special_tokens=False)["input_ids"]
    bos, eos = tok.bos_token_id, tok.eos_token_id
    add_bos = bos is not None and len(ids) > len(plain) and ids[0] == bos
    add_eos = eos is not None and len(ids) > len(plain) and ids[-1] == eos
    return add_bos, add_eos


def _added_tokens(tok: Any) -> dict[int, Any]:
    try:
        return dict(tok.added_tokens_decoder)
    except AttributeError:  # pragma: no cover - every fast tokenizer has it
        return {}


def build_vocab(model_dir: Path, n_vocab: int, gguf_mod: Any) -> VocabInfo:
    """Tokens, scores, types and merges the way llama.cpp expects them."""
    TT = gguf_mod.TokenType
    tok = _load_tokenizer(model_dir)
    tj = _tokenizer_json(model_dir)
    added = _added_tokens(tok)
    add_bos, add_eos = _special_flags(tok)
    sp_path = Path(model_dir) / "tokenizer.model"
    tmodel = (tj or {}).get("model", {})

    is_bpe = tj is not None and tmodel.get("type") == "BPE"
    byte_level = (
        is_bpe
        and not tmodel.get("byte_fallback")
        and (
            (tj.get("decoder") or {}).get("type") == "ByteLevel"
            or any(p.get("type") == "ByteLevel" for p in _flatten_pretok(tj.get("pre_tokenizer")))
        )
    )
    if sp_path.is_file() and not byte_level:
        tokens, scores, types = _spm_from_model(sp_path, TT)
        model, pre, merges = "llama", "default", []
    elif is_bpe and tmodel.get("byte_fallback"):
        tokens, scores, types = _spm_from_json(tj, TT)
        model, pre, merges = "llama", "default", []
    elif byte_level:
        pre = detect_pre_tokenizer(tj, tok)
        vocab = tok.get_vocab()
        tokens = [""] * (max(vocab.values()) + 1)
        for text, idx in vocab.items():
            tokens[idx] = text
        types = [int(TT.NORMAL)] * len(tokens)
        scores = None
        model, merges = "gpt2", []
    else:
        kind = tmodel.get("type") if tj else "no tokenizer.json"
        raise UnsupportedModelError(
            f"{model_dir}: tokenizer type {kind!r} is not supported for GGUF export "
            "(supported: SentencePiece / BPE-with-byte-fallback, byte-level BPE)"
        )

    # Extend to the model's vocabulary and mark added tokens.
    if len(tokens) > n_vocab or max(added, default=-1) >= n_vocab:
        raise ExportError(
            f"{model_dir}: the tokenizer has {max(len(tokens), max(added, default=-1) + 1)} tokens "
            f"but the model's embedding has {n_vocab} rows; resize the embeddings "
            "(model.resize_token_embeddings) before exporting"
        )
    # Rows beyond the tokenizer, and the HF added tokens, as llama.cpp's converter writes
    # them: padding "[PADi]" UNUSED (score -10000); every added token CONTROL when special
    # (or shaped like a control token) else USER_DEFINED, score -1000 so that llama.cpp's
    # SentencePiece merges never prefer one over a real piece.
    while len(tokens) < n_vocab:
        tokens.append("")
        types.append(int(TT.UNUSED))
        if scores is not None:
            scores.append(-10000.0)
    for idx, at in added.items():
        content = getattr(at, "content", str(at))
        if bool(getattr(at, "special", False)) or looks_special(content):
            types[idx] = int(TT.CONTROL)
        else:
            content = content.replace("\u2581", " ")  # llama.cpp expects user tokens normalized
            types[idx] = int(TT.USER_DEFINED)
        tokens[idx] = content
        if scores is not None:
            scores[idx] = -1000.0
    for i, t in enumerate(tokens):
        if t == "":
            tokens[i] = f"[PAD{i}]"
            types[i] = int(TT.UNUSED)
    return VocabInfo(model, pre, tokens, scores, types, merges, add_bos, add_eos)


def looks_special(text: str) -> bool:
    """Added tokens that are control tokens though not marked special (llama.cpp's rule:
    ``<|...|>`` / ``<｜...｜>`` markers, Gemma's ``<unused..>`` / ``<mask>``, ``<pad>``)."""
    if text in ("<pad>", "<mask>", "<2mass>", "[@BOS@]"):
        return True
    pairs = (("<|", "|>"), ("<\uff5c", "\uff5c>"), ("<unused", ">"))
    return any(text.startswith(a) and text.endswith(b) for a, b in pairs)


def _spm_from_model(path: Path, TT: Any) -> tuple[list[str], list[float], list[int]]:
    from sentencepiece import SentencePieceProcessor

    sp = SentencePieceProcessor()
    try:
        sp.LoadFromFile(str(path))
    except (OSError, RuntimeError) as exc:
        raise ExportError(f"{path}: not a readable SentencePiece model ({exc})") from exc
    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        tokens.append(sp.IdToPiece(i))
        scores.append(float(sp.GetScore(i)))
        if sp.IsUnknown(i):
            t = TT.UNKNOWN
        elif sp.IsControl(i):
            t = TT.CONTROL
        elif sp.IsUnused(i):
            t = TT.UNUSED
        elif sp.IsByte(i):
            t = TT.BYTE
        else:
            t = TT.NORMAL
        types.append(int(t))
    return tokens, scores, types


def _spm_from_json(tj: dict[str, Any], TT: Any) -> tuple[list[str], list[float], list[int]]:
    """A SentencePiece-style BPE (byte fallback) from tokenizer.json alone.

    llama.cpp's SPM tokenizer merges the adjacent pair whose *result* has the
    highest score; HF merges the pair with the lowest rank.  Giving each token
    the score -rank of the first merge that produces it makes both agree.
    """
    model = tj["model"]
    vocab: dict[str, int] = model["vocab"]
    size = max(vocab.values()) + 1 if vocab else 0
    tokens = [""] * size
    for text, idx in vocab.items():
        tokens[idx] = text
    rank: dict[str, int] = {}
    for r, m in enumerate(model.get("merges") or []):
        a, b = m if isinstance(m, list) else m.split(" ", 1)
        rank.setdefault(a + b, r)
    scores, types = [], []
    unk = model.get("unk_token")
    for text in tokens:
        if text in rank:
            scores.append(-float(rank[text]))
        else:
            scores.append(-1e6 if len(text) > 1 else 0.0)
        if re.fullmatch(r"<0x[0-9A-Fa-f]{2}>", text):
            types.append(int(TT.BYTE))
        elif unk is not None and text == unk:
            types.append(int(TT.UNKNOWN))
        else:
            types.append(int(TT.NORMAL))
    return tokens, scores, types


def write_vocab(gw, gguf, model_dir: Path, vocab: VocabInfo, n_vocab: int) -> None:
    gw.add_tokenizer_model(vocab.model)
    if vocab.pre:
        gw.add_tokenizer_pre(vocab.pre)
    gw.add_token_list([t.encode("utf-8") for t in vocab.tokens])
    if vocab.scores is not None:
        gw.add_token_scores(vocab.scores)
    gw.add_token_types(vocab.types)
    special = gguf.SpecialVocab(model_dir, load_merges=vocab.model == "gpt2", n_vocab=n_vocab)
    if vocab.model == "gpt2" and not special.merges:
        raise ExportError(f"{model_dir}: byte-level BPE tokenizer without merges; cannot export")
    # What the HF tokenizer really does beats what the config files claim.
    special.add_special_token["bos"] = vocab.add_bos
    special.add_special_token["eos"] = vocab.add_eos
    _quiet(lambda: special.add_to_gguf(gw, quiet=True))
    # As llama.cpp's converter does for the llama architecture (Llama, Mistral, SmolLM2):
    # the tokenizer config's add_prefix_space, when stated.
    prefix = _tokenizer_config(model_dir).get("add_prefix_space")
    if getattr(gw, "arch", None) == "llama" and isinstance(prefix, bool):
        gw.add_add_space_prefix(prefix)


def _tokenizer_config(model_dir: Path) -> dict[str, Any]:
    path = Path(model_dir) / "tokenizer_config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _quiet(fn) -> None:
    logger = logging.getLogger("gguf")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        fn()
    finally:
        logger.setLevel(level)
