"""Prove an exported GGUF answers like the model it came from, with at most one model in memory.

Three checks, each reported on its own (verify_report.py):

1. **Tokenization** - llama.cpp, loaded with its vocabulary only (no weights),
   tokenizes fixed texts (digits after spaces, fractions, Arabic-Indic digits,
   CJK, emoji, code with tabs, a chat-formatted prompt) exactly like the Hugging
   Face tokenizer; a known, explained difference is a warning.
2. **Tensors** - every GGUF tensor read back against the checkpoint, one
   tensor at a time (verify_tensors.py).
3. **Logits** - only when the model fits the memory available now (else
   "skipped" with the reason): the HF reference's logits and greedy answer are
   computed and cached first and the HF model is FREED; then llama.cpp maps the
   file and runs the same token ids: max |delta logit| and top-1 agreement.  For
   float files (f32/f16/bf16) the delta must stay within a tolerance relative to
   the logit range, and top-1 must agree wherever HF's top two are not a near-tie;
   quantized files must clear a top-1 floor.  Float files are then re-read by
   transformers itself (`gguf_file=`), again only when that fits.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

import numpy as np

from spark_tui.core.export import preflight
from spark_tui.core.export.common import (
    TEST_QUESTION,
    ExportError,
    Progress,
    UnsupportedModelError,
    report,
)
from spark_tui.core.export.verify_report import (
    LogitsCheck,
    TokenizationCheck,
    VerifyReport,
    compare_logits,
)
from spark_tui.core.export.verify_tensors import verify_tensors

__all__ = ["LogitsCheck", "Reference", "TokenizationCheck", "VerifyReport", "verify_gguf"]

DEFAULT_PROMPTS = (
    "Hello world! How are you today?",
    "What is the capital of France? Answer in one word.",
    "Numbers 12345 and 3.14, symbols #@!, double  spaces\nand a new line.",
)
# Tokenized only (no logits): the cases where tokenizers are known to part ways.
TOKENIZATION_TEXTS = (
    "  42",
    "½ cup of sugar, 2½ cups of flour",
    "Arabic-Indic digits ١٢٣ and ٤٥٦٧",
    "中文分词测试：你好，世界！日本語もテスト。",
    "Emoji 😀👍🏽 and a flag 🇫🇷",
    "def f(x):\n\tif x:\n\t\treturn x\t# tab\n",
)
CHAT_QUESTION = TEST_QUESTION

# Allowed max |delta logit| as a fraction of the HF logits' max |value|, per file type.
# f16 weights (and llama.cpp's f16 activations in matmuls) round at ~1e-3
# relative; bf16 at ~8e-3.  Quantized files are judged on top-1 agreement only.
REL_TOLERANCE = {"f32": 0.002, "f16": 0.02, "bf16": 0.05}
FLOAT_TYPES = preflight.FLOAT_TYPES
# Quantized files are not held to a logit delta; their top-1 agreement must only
# clear a floor that a broken file (wrong layout, wrong vocabulary) cannot.
MIN_TOP1 = {"q8_0": 0.6, "q6_k": 0.4, "q5_k_m": 0.35, "q4_k_m": 0.3}


class Reference:
    """The HF tokenizer (kept) and the HF model (loaded only to fill the logits/answer caches,
    then freed), so several GGUF types share one computation and llama.cpp never runs while
    the HF model is resident."""

    def __init__(self, model_dir: str | Path, *, dtype: Any = None):
        from transformers import AutoTokenizer

        from spark_tui.core.model.resolve import quiet_transformers

        self.model_dir = Path(model_dir)
        with quiet_transformers():
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        self.dtype = dtype  # None: what the memory preflight picks
        self.loaded_dtype: str | None = None
        self.model: Any = None
        self._cache: dict[tuple[int, ...], np.ndarray] = {}
        self._answers: dict[tuple[tuple[int, ...], int], str] = {}

    def prompt_ids(self, prompt: str) -> list[int]:
        return list(self.tokenizer(prompt, add_special_tokens=True)["input_ids"])

    def text_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def chat_text(self, question: str, system: str | None = None) -> str | None:
        if not getattr(self.tokenizer, "chat_template", None):
            return None
        msgs = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": question}
        ]
        try:
            return self.tokenizer.apply_chat_template(
                msgs, tokenize=False, add_generation_prompt=True
            )
        except Exception:  # a template that rejects the system role, etc.
            return None

    def _load_model(self, dtype: Any) -> Any:
        import torch
        from transformers import AutoModelForCausalLM

        from spark_tui.core.model.resolve import quiet_transformers

        if isinstance(dtype, str) and dtype != "auto":
            dtype = getattr(torch, dtype)
        with quiet_transformers():
            return AutoModelForCausalLM.from_pretrained(str(self.model_dir), dtype=dtype).eval()

    def prepare(
        self,
        id_lists: list[list[int]],
        *,
        chat_ids: list[int] | None = None,
        max_new_tokens: int = 32,
        dtype: Any = None,
    ) -> None:
        """Fill the caches for these inputs (loading the model once if anything is missing),
        then free the model."""
        todo = [ids for ids in id_lists if tuple(ids) not in self._cache]
        answer = chat_ids is not None and (tuple(chat_ids), max_new_tokens) not in self._answers
        if not todo and not answer:
            return
        import torch

        dtype = self.dtype or dtype or "float32"
        self.model = self._load_model(dtype)
        self.loaded_dtype = str(dtype).replace("torch.", "")
        try:
            with torch.no_grad():
                for ids in todo:
                    out = self.model(torch.tensor([ids])).logits[0]
                    self._cache[tuple(ids)] = out.float().numpy()
            if answer and chat_ids is not None:
                self._answers[(tuple(chat_ids), max_new_tokens)] = self._generate(
                    chat_ids, max_new_tokens
                )
        finally:
            self.release()

    def logits(self, ids: list[int]) -> np.ndarray:
        """Cached logits only: loading the model here could overlap with llama.cpp."""
        try:
            return self._cache[tuple(ids)]
        except KeyError:
            raise ExportError("internal: reference logits used before prepare()") from None

    def answer(self, ids: list[int], max_new_tokens: int) -> str | None:
        return self._answers.get((tuple(ids), max_new_tokens))

    def _generate(self, ids: list[int], max_new_tokens: int) -> str:
        import torch

        out = self.model.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
        )
        return self.tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True).strip()

    def release(self) -> None:
        """Free the HF model (the caches stay)."""
        self.model = None
        gc.collect()

    def close(self) -> None:
        self.release()
        self._cache.clear()
        self._answers.clear()


def _threads() -> int:
    """Half the usable cores: llama.cpp's worker threads spin, and on a busy machine
    (the trainer, the TUI) fewer threads finish sooner."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        n = os.cpu_count() or 1
    return max(1, min(n // 2, 16))


def _llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise ExportError(
            "verification needs llama-cpp-python (the `llama_cpp` module), which is not installed"
        ) from exc
    return llama_cpp


def load_llama(gguf_path: str | Path, n_ctx: int = 512) -> Any:
    """llama-cpp-python's Llama on `gguf_path`, quiet, with logits for every position."""
    llama_cpp = _llama_cpp()
    try:
        return llama_cpp.Llama(
            model_path=str(gguf_path),
            n_ctx=n_ctx,
            n_batch=n_ctx,
            n_threads=_threads(),
            logits_all=True,
            verbose=False,
        )
    except Exception as exc:
        raise ExportError(f"llama.cpp cannot load {gguf_path}: {exc}") from exc


def load_vocab(gguf_path: str | Path) -> Any:
    """llama.cpp's model with the vocabulary only (no weights mapped): all tokenization needs.
    Has `tokenize(text_bytes, add_bos, special)` and `close()`."""
    llama_cpp = _llama_cpp()
    from llama_cpp import _internals

    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    try:
        return _internals.LlamaModel(path_model=str(gguf_path), params=params, verbose=False)
    except Exception as exc:
        raise ExportError(f"llama.cpp cannot read the vocabulary of {gguf_path}: {exc}") from exc


def verify_gguf(
    gguf_path: str | Path,
    model_dir: str | Path,
    *,
    gguf_type: str = "f16",
    reference: Reference | None = None,
    prompts: tuple[str, ...] | list[str] = DEFAULT_PROMPTS,
    texts: tuple[str, ...] | list[str] = TOKENIZATION_TEXTS,
    logit_prompts: int | None = None,
    chat_question: str | None = CHAT_QUESTION,
    system: str | None = None,
    max_new_tokens: int = 32,
    hf_answer: bool = True,
    check_transformers: bool | None = None,
    tensors: bool = True,
    logits: bool = True,
    available_bytes: int | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """Run the three checks on `gguf_path` against the HF folder `model_dir` (module doc).

    `prompts` are tokenized and run for logits, `texts` only tokenized.  `logits=False`
    (the CLI's --no-logits) or too little memory (`available_bytes`, else what is free
    now) skips the logits check with the reason; `tensors=False` skips the tensor check.
    """
    gguf_path = Path(gguf_path)
    gguf_type = gguf_type.lower()
    own_ref = reference is None
    ref = reference or Reference(model_dir)
    rep = VerifyReport(gguf_path=gguf_path, gguf_type=gguf_type)
    report(progress, "verify", 0, 3)
    try:
        chat_text = ref.chat_text(chat_question, system) if chat_question else None
        all_texts = list(dict.fromkeys([*prompts, *texts]))
        _check_tokenization(rep, ref, gguf_path, all_texts, chat_text)
        report(progress, "verify", 1, 3)
        if not tensors:
            rep.tensors_skipped = "skipped: turned off"
        else:
            try:
                rep.tensors = verify_tensors(gguf_path, model_dir, gguf_type, progress=progress)
            except UnsupportedModelError as exc:  # a --llama-cpp export of another arch
                rep.tensors_skipped = f"skipped: {exc}"
            except ExportError as exc:
                rep.errors.append(f"tensors: {exc}")
        report(progress, "verify", 2, 3)
        if not logits:
            rep.logits_skipped = "skipped: turned off (--no-logits)"
        else:
            id_lists = [ref.prompt_ids(p) for p in prompts][: logit_prompts or None]
            chat_ids = ref.text_ids(chat_text) if chat_text else None
            try:
                _check_logits(
                    rep, ref, model_dir, id_lists, chat_ids, chat_question, max_new_tokens,
                    hf_answer, check_transformers, available_bytes,
                )  # fmt: skip
            except ExportError as exc:
                rep.errors.append(f"logits: {exc}")
        report(progress, "verify", 3, 3)
    finally:
        if own_ref:
            ref.close()
        else:
            ref.release()
    return rep


def _check_tokenization(
    rep: VerifyReport, ref: Reference, path: Path, texts: list[str], chat_text: str | None
) -> None:
    try:
        vocab = load_vocab(path)
    except ExportError as exc:
        rep.errors.append(f"tokenization: {exc}")
        return
    special = frozenset(getattr(ref.tokenizer, "all_special_ids", None) or ())
    spm = _sentencepiece(ref.model_dir)
    try:
        for p in texts:
            g = list(vocab.tokenize(p.encode("utf-8"), True, True))
            check = TokenizationCheck(p, ref.prompt_ids(p), g, special)
            if not check.match:
                check.pieces = list(ref.tokenizer.convert_ids_to_tokens(g))
                check.hf_pieces = list(ref.tokenizer.convert_ids_to_tokens(check.hf_ids))
                if spm is not None:  # the arbiter for SentencePiece vocabularies
                    check.spm_ids = list(spm.encode(p))
            rep.tokenization.append(check)
        if chat_text is not None:
            g = list(vocab.tokenize(chat_text.encode("utf-8"), False, True))
            check = TokenizationCheck(chat_text, ref.text_ids(chat_text), g, special)
            if not check.match:
                check.pieces = list(ref.tokenizer.convert_ids_to_tokens(g))
                check.hf_pieces = list(ref.tokenizer.convert_ids_to_tokens(check.hf_ids))
            rep.tokenization.append(check)
    finally:
        vocab.close()


def _sentencepiece(model_dir: Path) -> Any:
    """SentencePiece's own processor on the folder's tokenizer.model, if there is one."""
    path = Path(model_dir) / "tokenizer.model"
    if not path.is_file():
        return None
    try:
        import sentencepiece

        return sentencepiece.SentencePieceProcessor(model_file=str(path))
    except Exception:  # not a SentencePiece model (some repos ship other files by that name)
        return None


def _check_logits(
    rep: VerifyReport,
    ref: Reference,
    model_dir: str | Path,
    id_lists: list[list[int]],
    chat_ids: list[int] | None,
    chat_question: str | None,
    max_new_tokens: int,
    hf_answer: bool,
    check_transformers: bool | None,
    available_bytes: int | None,
) -> None:
    """HF reference first (then freed), llama.cpp second, transformers' re-read last."""
    path, qtype = rep.gguf_path, rep.gguf_type
    fp = preflight.model_footprint(model_dir)
    memory = preflight.available_memory(available_bytes)
    stage = preflight.logits_stage(fp, qtype, path.stat().st_size, memory)
    if not stage.fits:
        rep.logits_skipped = stage.skip_reason()
        return
    ref.prepare(
        id_lists,
        chat_ids=chat_ids if hf_answer else None,
        max_new_tokens=max_new_tokens,
        dtype=stage.dtype,
    )
    rep.reference_dtype = ref.loaded_dtype or stage.dtype
    n_ctx = max([len(i) for i in id_lists] + [len(chat_ids or [])]) + max_new_tokens + 16
    llm = load_llama(path, n_ctx=max(256, n_ctx))
    try:
        pairs = []
        for ids in id_lists:
            llm.reset()
            llm.eval(ids)
            pairs.append((ref.logits(ids), np.array(llm.scores[: len(ids)], dtype=np.float32)))
        rep.llama_logits = compare_logits(
            "llama.cpp", pairs, REL_TOLERANCE.get(qtype), MIN_TOP1.get(qtype, 0.0)
        )
        if chat_ids:
            rep.chat_prompt = chat_question
            llm.reset()
            out = llm.create_completion(
                prompt=chat_ids, max_tokens=max_new_tokens, temperature=0.0, top_k=1
            )
            rep.gguf_answer = out["choices"][0]["text"].strip()
            if hf_answer:
                rep.hf_answer = ref.answer(chat_ids, max_new_tokens)
    finally:
        llm.close()
        del llm
        gc.collect()
    if check_transformers is None:
        check_transformers = qtype in FLOAT_TYPES
        arch = _gguf_arch(model_dir)
        if check_transformers and arch in TRANSFORMERS_MISREADS:
            check_transformers = False
            rep.transformers_skipped = (
                f"skipped: transformers' own GGUF reader computes {arch} wrongly (it does so "
                "on llama.cpp's own converter output too); llama.cpp's check above stands"
            )
    if check_transformers:
        rs = preflight.reread_stage(fp, qtype, memory)
        if rs.fits:
            rep.transformers_logits = _transformers_check(path, ref, id_lists, qtype)
        else:
            rep.transformers_skipped = rs.skip_reason()


# GGUF architectures whose transformers (gguf_file=) re-read gives wrong logits even for
# llama.cpp's reference conversion (seen with transformers 5.24: Gemma 2 max |Δ| 1.4,
# Phi-3 60): the cross-check would report a failure that is not in the file.
TRANSFORMERS_MISREADS = ("gemma2", "phi3")


def _gguf_arch(model_dir: str | Path) -> str | None:
    """The GGUF architecture the exporter maps this HF folder to (None if it does not)."""
    from spark_tui.core.export.gguf_writer import gguf_arch_for, read_config

    try:
        return gguf_arch_for(read_config(Path(model_dir)))[1]
    except ExportError:  # exported through a llama.cpp checkout: no opinion
        return None


def _transformers_check(
    gguf_path: Path, ref: Reference, id_lists: list[list[int]], gguf_type: str
) -> LogitsCheck:
    """transformers reads the GGUF on its own; compared with the cached HF logits."""
    import torch
    from transformers import AutoModelForCausalLM

    from spark_tui.core.model.resolve import quiet_transformers

    try:
        with quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(
                str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
            ).eval()
    except Exception as exc:
        raise ExportError(f"transformers cannot read {gguf_path.name}: {exc}") from exc
    try:
        pairs = []
        with torch.no_grad():
            for ids in id_lists:
                out = model(torch.tensor([ids])).logits[0].float().numpy()
                pairs.append((ref.logits(ids), out))
    finally:
        del model
        gc.collect()
    return compare_logits(
        "transformers (gguf_file=)",
        pairs,
        REL_TOLERANCE.get(gguf_type),
        MIN_TOP1.get(gguf_type, 0.0),
    )
