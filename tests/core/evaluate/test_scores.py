"""Text scores: ROUGE-1/2/L and BLEU against the real libraries."""

from __future__ import annotations

import pytest

from spark_tui.core.evaluate.scores import corpus_scores, text_scores


def test_identical_strings_score_perfect():
    s = text_scores(
        "LoRA adds low-rank matrices to frozen weights.",
        "LoRA adds low-rank matrices to frozen weights.",
    )
    assert s["rouge1"] == pytest.approx(1.0)
    assert s["rouge2"] == pytest.approx(1.0)
    assert s["rougeL"] == pytest.approx(1.0)
    assert s["bleu"] == pytest.approx(100.0)


def test_disjoint_strings_score_zero():
    s = text_scores("apples oranges bananas", "quantization memory gradient")
    assert s == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0, "bleu": 0.0}


def test_partial_overlap_matches_the_libraries():
    import sacrebleu
    from rouge_score import rouge_scorer

    pred, ref = "the cat sat on the mat", "the cat lay on the mat"
    s = text_scores(pred, ref)
    # 5 of 6 unigrams shared (precision = recall = 5/6).
    assert s["rouge1"] == pytest.approx(5 / 6)
    expected = (
        rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(ref, pred)["rougeL"].fmeasure
    )
    assert s["rougeL"] == pytest.approx(expected)
    assert s["bleu"] == pytest.approx(sacrebleu.sentence_bleu(pred, [ref]).score)
    assert 0.0 < s["bleu"] < 100.0


def test_corpus_scores_average_rouge_and_use_corpus_bleu():
    import sacrebleu

    preds = ["the cat sat on the mat", "a b c d"]
    refs = ["the cat sat on the mat", "w x y z"]
    c = corpus_scores(preds, refs)
    assert c["rougeL"] == pytest.approx(0.5)
    assert c["bleu"] == pytest.approx(sacrebleu.corpus_bleu(preds, [refs]).score)
    assert corpus_scores([], []) == {}
