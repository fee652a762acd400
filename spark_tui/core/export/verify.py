"""Prove an exported GGUF answers like the model it came from.

Three independent checks, each reported with its numbers:

1. **Tokenization** - llama.cpp (llama-cpp-python) tokenizes fixed prompts,
   including a chat-formatted one, exactly like the Hugging Face tokenizer.
2. **llama.cpp logits** - the same token ids are run through llama.cpp and the
   HF model; we report max |delta logit| over every position and the top-1
   agreement.  For float files (f32/f16/bf16) the max delta must stay within a
   tolerance relative to the logit range, and top-1 must agree at 100 % of the
   positions where HF's top two are not a near-tie (closer than the tolerance;
   those are reported separately).  Quantized files report top-1 agreement
   and a short greedy chat answer next to the HF model's answer.
3. **transformers re-read** - transformers loads the GGUF itself
   (`gguf_file=`) and its logits must match the HF model within tolerance.
"""

from __future__ import annotations

import contextlib
import gc
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spark_tui.core.export.common import ExportError, Progress, report

DEFAULT_PROMPTS = (
    "Hello world! How are you today?",
    "What is the capital of France? Answer in one word.",
    "Numbers 12345 and 3.14, symbols #@!, double  spaces\nand a new line.",
)
CHAT_QUESTION = "What is the capital of France?"

# Allowed max |delta logit| as a fraction of the HF logits' max |value|, per file type.
# f16 weights (and llama.cpp's f16 activations in matmuls) round at ~1e-3
# relative; bf16 at ~8e-3.  Quantized files are judged on top-1 agreement only.
REL_TOLERANCE = {"f32": 0.002, "f16": 0.02, "bf16": 0.05}
FLOAT_TYPES = ("f32", "f16", "bf16")
# Quantized files are not held to a logit delta; their top-1 agreement must only
# clear a floor that a broken file (wrong layout, wrong vocabulary) cannot.
MIN_TOP1 = {"q8_0": 0.6, "q6_k": 0.4, "q5_k_m": 0.35, "q4_k_m": 0.3}


@dataclass
class TokenizationCheck:
    prompt: str
    hf_ids: list[int]
    gguf_ids: list[int]

    @property
    def match(self) -> bool:
        return self.hf_ids == self.gguf_ids

    def explain(self) -> str | None:
        """A known cause for a mismatch, if it is one."""
        h, g = self.hf_ids, self.gguf_ids
        if len(g) == len(h) + 1:
            for i in range(len(h) + 1):
                if g[:i] == h[:i] and g[i + 1 :] == h[i:]:
                    return (
                        "llama.cpp's SentencePiece tokenizer adds a space after special tokens "
                        "(the 'legacy' behaviour); this Hugging Face tokenizer does not "
                        "(legacy=False), so chat prompts differ by one token"
                    )
        return None


@dataclass
class LogitsCheck:
    """HF vs other logits over every position of the check prompts."""

    source: str  # "llama.cpp" or "transformers (gguf_file=)"
    n_positions: int
    max_abs_diff: float
    logit_scale: float  # max |HF logit|
    tolerance: float | None  # absolute; None = not judged on the delta
    top1_agreement: float  # over all positions
    decisive_positions: int  # positions whose HF top-2 margin exceeds the tolerance
    decisive_top1_agreement: float
    passed: bool

    def line(self) -> str:
        tol = f" (tolerance {self.tolerance:.3g})" if self.tolerance is not None else ""
        return (
            f"{self.source}: max |Δlogit| {self.max_abs_diff:.4g}{tol} over {self.n_positions} "
            f"positions, top-1 agreement {self.top1_agreement:.1%}"
            + (
                f" ({self.decisive_top1_agreement:.0%} where not a near-tie)"
                if self.decisive_positions < self.n_positions
                else ""
            )
            + (" - ok" if self.passed else " - FAILED")
        )


@dataclass
class VerifyReport:
    gguf_path: Path
    gguf_type: str
    tokenization: list[TokenizationCheck] = field(default_factory=list)
    llama_logits: LogitsCheck | None = None
    transformers_logits: LogitsCheck | None = None
    chat_prompt: str | None = None
    gguf_answer: str | None = None
    hf_answer: str | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def tokenization_ok(self) -> bool:
        return bool(self.tokenization) and all(t.match for t in self.tokenization)

    @property
    def passed(self) -> bool:
        checks = [self.llama_logits, self.transformers_logits]
        return (
            not self.errors
            and self.tokenization_ok
            and self.llama_logits is not None
            and all(c.passed for c in checks if c is not None)
        )

    def summary_lines(self) -> list[str]:
        n_ok = sum(t.match for t in self.tokenization)
        lines = [
            f"{self.gguf_path.name} ({self.gguf_type}): "
            + ("verified" if self.passed else "verification FAILED"),
            f"tokenization: {n_ok}/{len(self.tokenization)} prompts identical to Hugging Face",
        ]
        for t in self.tokenization:
            if not t.match:
                lines.append(
                    f"  differs on {t.prompt[:40]!r}: HF {t.hf_ids[:12]} vs GGUF {t.gguf_ids[:12]}"
                )
                if why := t.explain():
                    lines.append(f"  ({why})")
        for c in (self.llama_logits, self.transformers_logits):
            if c is not None:
                lines.append(c.line())
        if self.gguf_answer is not None:
            lines.append(f"chat: {self.chat_prompt!r}")
            lines.append(f"  GGUF (llama.cpp): {self.gguf_answer!r}")
            if self.hf_answer is not None:
                lines.append(f"  Hugging Face:     {self.hf_answer!r}")
        lines.extend(f"error: {e}" for e in self.errors)
        return lines

    def to_dict(self) -> dict[str, Any]:
        def lc(c: LogitsCheck | None) -> dict[str, Any] | None:
            return None if c is None else dict(c.__dict__)

        return {
            "gguf": str(self.gguf_path),
            "type": self.gguf_type,
            "passed": self.passed,
            "tokenization_ok": self.tokenization_ok,
            "tokenization": [
                {"prompt": t.prompt, "match": t.match, "hf": t.hf_ids, "gguf": t.gguf_ids}
                for t in self.tokenization
            ],
            "llama_logits": lc(self.llama_logits),
            "transformers_logits": lc(self.transformers_logits),
            "chat_prompt": self.chat_prompt,
            "gguf_answer": self.gguf_answer,
            "hf_answer": self.hf_answer,
            "errors": self.errors,
            "summary": self.summary_lines(),
        }


class Reference:
    """The HF model + tokenizer the GGUF is compared with; logits cached per prompt."""

    def __init__(self, model_dir: str | Path, *, dtype: Any = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_dir = Path(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        self.model = AutoModelForCausalLM.from_pretrained(
            str(self.model_dir), dtype=dtype or _reference_dtype(self.model_dir)
        ).eval()
        self._torch = torch
        self._cache: dict[tuple[int, ...], np.ndarray] = {}
        self._answers: dict[tuple[tuple[int, ...], int], str] = {}

    def prompt_ids(self, prompt: str) -> list[int]:
        return list(self.tokenizer(prompt, add_special_tokens=True)["input_ids"])

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

    def text_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def logits(self, ids: list[int]) -> np.ndarray:
        key = tuple(ids)
        if key not in self._cache:
            with self._torch.no_grad():
                out = self.model(self._torch.tensor([ids])).logits[0]
            self._cache[key] = out.float().numpy()
        return self._cache[key]

    def generate(self, ids: list[int], max_new_tokens: int) -> str:
        key = (tuple(ids), max_new_tokens)
        if key not in self._answers:
            self._answers[key] = self._generate(ids, max_new_tokens)
        return self._answers[key]

    def _generate(self, ids: list[int], max_new_tokens: int) -> str:
        torch = self._torch
        with torch.no_grad():
            out = self.model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            )
        return self.tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True).strip()

    def close(self) -> None:
        self.model = None
        self._cache.clear()
        gc.collect()


def _reference_dtype(model_dir: Path) -> Any:
    """float32 when it fits comfortably in RAM (exact reference), else the checkpoint's dtype."""
    import torch

    from spark_tui.core.fsutil import dir_size

    weights = sum(p.stat().st_size for p in Path(model_dir).glob("*.safetensors")) or dir_size(
        model_dir
    )
    try:
        import psutil

        avail = psutil.virtual_memory().available
    except Exception:  # pragma: no cover - psutil is a dependency
        avail = 8 << 30
    # fp32 is at most 2x a 16-bit checkpoint.
    return torch.float32 if weights * 2 < avail * 0.4 else "auto"


def compare_logits(
    source: str,
    pairs: list[tuple[np.ndarray, np.ndarray]],
    rel_tolerance: float | None,
    min_top1: float = 0.0,
) -> LogitsCheck:
    """Compare (hf, other) logits arrays of shape [positions, vocab]."""
    hf = np.concatenate([p[0] for p in pairs], axis=0).astype(np.float32)
    other = np.concatenate([p[1] for p in pairs], axis=0).astype(np.float32)
    n = min(hf.shape[1], other.shape[1])
    hf, other = hf[:, :n], other[:, :n]
    diff = float(np.max(np.abs(hf - other))) if hf.size else 0.0
    scale = float(np.max(np.abs(hf))) if hf.size else 0.0
    tol = None if rel_tolerance is None else rel_tolerance * max(scale, 1.0)
    top_hf = hf.argmax(-1)
    top_other = other.argmax(-1)
    agree = top_hf == top_other
    part = np.partition(hf, -2, axis=-1)
    margin = part[:, -1] - part[:, -2]
    decisive = margin > (tol if tol is not None else 0.0)
    n_dec = int(decisive.sum())
    dec_agree = float(agree[decisive].mean()) if n_dec else 1.0
    top1 = float(agree.mean()) if agree.size else 1.0
    passed = (tol is None or (diff <= tol and dec_agree == 1.0)) and top1 >= min_top1
    return LogitsCheck(
        source=source,
        n_positions=int(hf.shape[0]),
        max_abs_diff=diff,
        logit_scale=scale,
        tolerance=tol,
        top1_agreement=top1,
        decisive_positions=n_dec,
        decisive_top1_agreement=dec_agree,
        passed=passed,
    )


def _threads() -> int:
    """Half the usable cores: llama.cpp's worker threads spin, and on a busy machine
    (the trainer, the TUI) fewer threads finish sooner."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        n = os.cpu_count() or 1
    return max(1, min(n // 2, 16))


def load_llama(gguf_path: str | Path, n_ctx: int = 512) -> Any:
    """llama-cpp-python's Llama on `gguf_path`, quiet, with logits for every position."""
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise ExportError(
            "verification needs llama-cpp-python (the `llama_cpp` module), which is not installed"
        ) from exc
    try:
        return Llama(
            model_path=str(gguf_path),
            n_ctx=n_ctx,
            n_batch=n_ctx,
            n_threads=_threads(),
            logits_all=True,
            verbose=False,
        )
    except Exception as exc:
        raise ExportError(f"llama.cpp cannot load {gguf_path}: {exc}") from exc


def verify_gguf(
    gguf_path: str | Path,
    model_dir: str | Path,
    *,
    gguf_type: str = "f16",
    reference: Reference | None = None,
    prompts: tuple[str, ...] | list[str] = DEFAULT_PROMPTS,
    logit_prompts: int | None = None,
    chat_question: str | None = CHAT_QUESTION,
    system: str | None = None,
    max_new_tokens: int = 32,
    hf_answer: bool = True,
    check_transformers: bool | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """Run all checks on `gguf_path` against the HF folder `model_dir` (see module doc)."""
    gguf_path = Path(gguf_path)
    gguf_type = gguf_type.lower()
    own_ref = reference is None
    ref = reference or Reference(model_dir)
    rep = VerifyReport(gguf_path=gguf_path, gguf_type=gguf_type)
    if check_transformers is None:
        check_transformers = gguf_type in FLOAT_TYPES
    steps = 4 if check_transformers else 3
    report(progress, "verify", 0, steps)
    try:
        chat_text = ref.chat_text(chat_question, system) if chat_question else None
        id_lists = [ref.prompt_ids(p) for p in prompts]
        chat_ids = ref.text_ids(chat_text) if chat_text else None
        n_ctx = max([len(i) for i in id_lists] + [len(chat_ids or [])]) + max_new_tokens + 16
        llm = load_llama(gguf_path, n_ctx=max(256, n_ctx))
        try:
            # 1. tokenization
            for p, ids in zip(prompts, id_lists, strict=True):
                g = llm.tokenize(p.encode("utf-8"), add_bos=True, special=True)
                rep.tokenization.append(TokenizationCheck(p, ids, list(g)))
            if chat_text is not None and chat_ids is not None:
                g = llm.tokenize(chat_text.encode("utf-8"), add_bos=False, special=True)
                rep.tokenization.append(TokenizationCheck(chat_text, chat_ids, list(g)))
            report(progress, "verify", 1, steps)
            # 2. logits, on HF's token ids so a tokenizer difference cannot hide a weight problem
            pairs = []
            for ids in id_lists[: logit_prompts or len(id_lists)]:
                llm.reset()
                llm.eval(ids)
                pairs.append((ref.logits(ids), np.array(llm.scores[: len(ids)], dtype=np.float32)))
            rep.llama_logits = compare_logits(
                "llama.cpp", pairs, REL_TOLERANCE.get(gguf_type), MIN_TOP1.get(gguf_type, 0.0)
            )
            report(progress, "verify", 2, steps)
            # 3. a short greedy chat answer from both
            if chat_ids:
                rep.chat_prompt = chat_question
                llm.reset()
                out = llm.create_completion(
                    prompt=chat_ids, max_tokens=max_new_tokens, temperature=0.0, top_k=1
                )
                rep.gguf_answer = out["choices"][0]["text"].strip()
                if hf_answer:
                    rep.hf_answer = ref.generate(chat_ids, max_new_tokens)
            report(progress, "verify", 3, steps)
        finally:
            llm.close()
        # 4. transformers reads the GGUF on its own
        if check_transformers:
            rep.transformers_logits = _transformers_check(
                gguf_path, ref, id_lists[: logit_prompts or len(id_lists)], gguf_type
            )
            report(progress, "verify", 4, steps)
    except ExportError as exc:
        rep.errors.append(str(exc))
    finally:
        if own_ref:
            ref.close()
    return rep


def _transformers_check(
    gguf_path: Path, ref: Reference, id_lists: list[list[int]], gguf_type: str
) -> LogitsCheck:
    import torch
    from transformers import AutoModelForCausalLM

    try:
        with _quiet_stderr():
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


@contextlib.contextmanager
def _quiet_stderr():
    """Silence transformers' progress bars while it converts the GGUF."""
    from transformers.utils import logging as hf_logging

    prev = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if prev:
            hf_logging.enable_progress_bar()
