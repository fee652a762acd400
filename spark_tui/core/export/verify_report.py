"""The verification report of one GGUF file: three checks, each listed on its own.

1. tokenization - llama.cpp vs the Hugging Face tokenizer on fixed texts;
2. tensors      - every tensor read back against the checkpoint (verify_tensors.py);
3. logits       - llama.cpp (and, for float files, transformers' own GGUF reader)
                  vs the HF model, or "skipped" with the reason (memory, --no-logits).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spark_tui.core.export.verify_tensors import TensorReport

LEGACY_SPACE = (
    "llama.cpp's SentencePiece tokenizer adds a space after special tokens (the 'legacy' "
    "behaviour); this Hugging Face tokenizer does not (legacy=False), so chat prompts differ "
    "by one token"
)
LEADING_SPACE = (
    "leading spaces: llama.cpp keeps SentencePiece's dummy-prefix space in front of them; this "
    "Hugging Face tokenizer folds one into it, so the text differs by one token"
)
SAME_AS_SPM = (
    "llama.cpp tokenizes this exactly like SentencePiece itself (tokenizer.model); the Hugging "
    "Face tokenizer is the one that differs"
)


@dataclass
class TokenizationCheck:
    prompt: str
    hf_ids: list[int]
    gguf_ids: list[int]
    special_ids: frozenset[int] = frozenset()  # HF's special tokens (BOS, EOS, ...)
    spm_ids: list[int] | None = None  # SentencePiece's own ids, when tokenizer.model exists
    pieces: list[str] | None = None  # the GGUF ids as HF token strings (set on a mismatch)
    hf_pieces: list[str] | None = None  # the HF ids as token strings (set on a mismatch)

    @property
    def match(self) -> bool:
        return self.hf_ids == self.gguf_ids

    @property
    def status(self) -> str:
        """identical | warning (a known, explained difference) | FAILED."""
        if self.match:
            return "identical"
        return "warning" if self.explain() else "FAILED"

    def explain(self) -> str | None:
        """A known cause for a mismatch, if it is one."""
        h, g = self.hf_ids, self.gguf_ids
        if self.match:
            return None
        bos = g[:1] if g[:1] and g[0] in self.special_ids else []
        if self.spm_ids and g in (self.spm_ids, bos + self.spm_ids):
            return SAME_AS_SPM
        extra = next(
            (i for i in range(len(h) + 1) if g[:i] == h[:i] and g[i + 1 :] == h[i:]), None
        ) if len(g) == len(h) + 1 else None  # fmt: skip
        if extra is None:
            return LEGACY_SPACE if self._legacy_space_merged() else None
        space = self.pieces is None or not self.pieces[extra].strip("▁ Ġ")
        if extra > 0 and g[extra - 1] in self.special_ids and space:
            return LEGACY_SPACE
        lead = (self.pieces or [])[: extra + 1]
        if self.prompt[:1].isspace() and len(lead) == extra + 1:
            blank = [
                t in self.special_ids or not p.strip("▁ Ġ")
                for t, p in zip(g[: extra + 1], lead, strict=True)
            ]
            if all(blank):  # the extra token sits inside the leading whitespace
                return LEADING_SPACE
        return None

    def _legacy_space_merged(self) -> bool:
        """The legacy extra space after special tokens, merged into the next pieces.

        llama.cpp puts a space before each text fragment that follows a special token;
        when the vocabulary has pieces such as '▁▁' the extra space does not stand as a
        token of its own ('▁▁', 'W' instead of '▁W').  Fragment by fragment, the GGUF
        text must equal HF's with one '▁' more after a special token, and nothing else.
        """
        if self.pieces is None or self.hf_pieces is None:
            return False

        def fragments(ids: list[int], pieces: list[str]) -> list[tuple[bool, str]]:
            out: list[tuple[bool, str]] = []  # (follows a special token, text)
            prev_special, buf = False, None
            for t, p in zip(ids, pieces, strict=True):
                if t in self.special_ids:
                    if buf is not None:
                        out.append(buf)
                    out.append((True, f"<{t}>"))
                    prev_special, buf = True, None
                else:
                    buf = (buf[0], buf[1] + p) if buf else (prev_special, p)
                    prev_special = False
            if buf is not None:
                out.append(buf)
            return out

        g = fragments(self.gguf_ids, self.pieces)
        h = fragments(self.hf_ids, self.hf_pieces)
        if len(g) != len(h):
            return False
        extra = 0
        for (g_after, g_text), (_h_after, h_text) in zip(g, h, strict=True):
            if g_text == h_text:
                continue
            if g_after and g_text == "▁" + h_text:
                extra += 1
                continue
            return False
        return extra > 0


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
    tensors: TensorReport | None = None
    tensors_skipped: str | None = None  # why the tensor check did not run
    llama_logits: LogitsCheck | None = None
    transformers_logits: LogitsCheck | None = None
    logits_skipped: str | None = None  # "skipped: needs ~X GB, Y GB available", ...
    transformers_skipped: str | None = None
    reference_dtype: str | None = None
    chat_prompt: str | None = None
    gguf_answer: str | None = None
    hf_answer: str | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def tokenization_identical(self) -> bool:
        """Every text tokenized identically (stricter than `tokenization_ok`)."""
        return bool(self.tokenization) and all(t.match for t in self.tokenization)

    @property
    def tokenization_ok(self) -> bool:
        """Identical, or different only in ways `TokenizationCheck.explain` accounts for
        (those are warnings, not failures)."""
        return bool(self.tokenization) and all(t.status != "FAILED" for t in self.tokenization)

    @property
    def tensors_ok(self) -> bool:
        return self.tensors is not None and self.tensors.ok

    @property
    def logits_ok(self) -> bool:
        checks = [c for c in (self.llama_logits, self.transformers_logits) if c is not None]
        return self.llama_logits is not None and all(c.passed for c in checks)

    @property
    def passed(self) -> bool:
        """Tokenization passed, tensors ok, logits ok or skipped with a reason; a check may be
        turned off only while the other weight check ran."""
        tensors = self.tensors_ok or (self.tensors is None and bool(self.tensors_skipped))
        logits = self.logits_ok or (self.llama_logits is None and bool(self.logits_skipped))
        ran_weights = self.tensors is not None or self.llama_logits is not None
        return not self.errors and self.tokenization_ok and tensors and logits and ran_weights

    def summary_lines(self) -> list[str]:
        lines = [
            f"{self.gguf_path.name} ({self.gguf_type}): "
            + ("verified" if self.passed else "verification FAILED")
        ]
        lines += self.tokenization_lines() + self.tensor_lines() + self.logits_lines()
        lines.extend(f"error: {e}" for e in self.errors)
        return lines

    def tokenization_lines(self) -> list[str]:
        n = len(self.tokenization)
        same = sum(t.match for t in self.tokenization)
        warn = sum(t.status == "warning" for t in self.tokenization)
        verdict = "ok" if self.tokenization_ok else "FAILED"
        if self.tokenization_ok and warn:
            verdict = f"ok with {warn} explained difference(s) (warning)"
        lines = [f"tokenization: {same}/{n} texts identical to Hugging Face - {verdict}"]
        for t in self.tokenization:
            if not t.match:
                tag = "warning" if t.status == "warning" else "differs"
                lines.append(
                    f"  {tag} on {t.prompt[:40]!r}: HF {t.hf_ids[:12]} vs GGUF {t.gguf_ids[:12]}"
                )
                if why := t.explain():
                    lines.append(f"  ({why})")
        return lines

    def tensor_lines(self) -> list[str]:
        if self.tensors is not None:
            return self.tensors.lines()
        return [f"tensors: {self.tensors_skipped or 'not checked'}"]

    def logits_lines(self) -> list[str]:
        if self.llama_logits is None:
            return [f"logits: {self.logits_skipped or 'not checked'}"]
        ref = f", reference in {self.reference_dtype}" if self.reference_dtype else ""
        lines = [
            f"logits: llama.cpp vs transformers{ref} - " + ("ok" if self.logits_ok else "FAILED")
        ]
        lines.append(f"  {self.llama_logits.line()}")
        if self.transformers_logits is not None:
            lines.append(f"  {self.transformers_logits.line()}")
        elif self.transformers_skipped:
            lines.append(f"  transformers (gguf_file=) re-read: {self.transformers_skipped}")
        if self.gguf_answer is not None:
            lines.append(f"  chat: {self.chat_prompt!r}")
            lines.append(f"    GGUF (llama.cpp): {self.gguf_answer!r}")
            if self.hf_answer is not None:
                lines.append(f"    Hugging Face:     {self.hf_answer!r}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        def lc(c: LogitsCheck | None) -> dict[str, Any] | None:
            return None if c is None else dict(c.__dict__)

        return {
            "gguf": str(self.gguf_path),
            "type": self.gguf_type,
            "passed": self.passed,
            "tokenization": {
                "passed": self.tokenization_ok,
                "identical": self.tokenization_identical,
                "texts": [
                    {
                        "text": t.prompt,
                        "status": t.status,
                        "hf": t.hf_ids,
                        "gguf": t.gguf_ids,
                        "explanation": t.explain(),
                    }
                    for t in self.tokenization
                ],
            },
            "tensors": (
                self.tensors.to_dict()
                if self.tensors is not None
                else {"ok": None, "skipped": self.tensors_skipped}
            ),
            "logits": {
                "ok": self.logits_ok if self.llama_logits is not None else None,
                "skipped": self.logits_skipped,
                "reference_dtype": self.reference_dtype,
                "llama_cpp": lc(self.llama_logits),
                "transformers": lc(self.transformers_logits),
                "transformers_skipped": self.transformers_skipped,
                "chat_prompt": self.chat_prompt,
                "gguf_answer": self.gguf_answer,
                "hf_answer": self.hf_answer,
            },
            "errors": self.errors,
            "summary": self.summary_lines(),
        }


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
