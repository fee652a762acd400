"""Text scores of generated answers against references: ROUGE-1/2/L and BLEU.

ROUGE comes from the `rouge-score` package (F-measure, stemming on, 0..1) and
BLEU from `sacrebleu` (0..100).  Per-sample scores are sentence scores; a
summary is the mean ROUGE F1 and the corpus BLEU over all samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL")

_SCORER: Any = None


def _rouge_scorer() -> Any:
    global _SCORER
    if _SCORER is None:
        from rouge_score import rouge_scorer

        _SCORER = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True)
    return _SCORER


def text_scores(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1/2/L F-measure (0..1) and sentence BLEU (0..100) of one answer."""
    import sacrebleu

    rouge = _rouge_scorer().score(reference, prediction)
    out = {k: float(rouge[k].fmeasure) for k in ROUGE_KEYS}
    out["bleu"] = float(sacrebleu.sentence_bleu(prediction, [reference]).score)
    return out


def corpus_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE F1 over the samples and corpus BLEU (sacrebleu) of all of them."""
    import sacrebleu

    if len(predictions) != len(references):
        raise ValueError("predictions and references differ in length")
    if not predictions:
        return {}
    per = [text_scores(p, r) for p, r in zip(predictions, references, strict=True)]
    out = {k: sum(s[k] for s in per) / len(per) for k in ROUGE_KEYS}
    out["bleu"] = float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)
    return out
