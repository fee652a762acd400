"""Blind A/B review: seeded order, picks saved and resumed, win rate with ties as half."""

from __future__ import annotations

import json

import pytest

from spark_tui.config import RunConfig
from spark_tui.core.base import names
from spark_tui.core.base.atomic import atomic_write_json
from spark_tui.core.evaluate import ab_review as ab
from spark_tui.core.train.runs import create_run


def _evaluated_run(root, n=6):
    run = create_run(RunConfig(name="ab"), root=root)
    samples = [
        {
            "prompt": f"q{i}",
            "reference": f"ref{i}",
            "base": f"base answer {i}",
            "tuned": f"tuned answer {i}",
        }
        for i in range(n)
    ]
    samples.append({"prompt": "tuned only", "reference": "r", "tuned": "t"})  # not pairable
    atomic_write_json(run.path / "eval.json", {"samples": samples})
    return run


def test_win_rate_counts_ties_as_half():
    s = ab.win_rate(["tuned", "tuned", "base", "tie"])
    assert (s["tuned_wins"], s["base_wins"], s["ties"], s["judged"]) == (2, 1, 1, 4)
    assert s["win_rate"] == pytest.approx(2.5 / 4)
    assert s["decisive_win_rate"] == pytest.approx(2 / 3)
    assert ab.win_rate(["tie", "tie"])["win_rate"] == 0.5
    assert ab.win_rate(["tie", "tie"])["decisive_win_rate"] is None
    assert ab.win_rate([])["win_rate"] is None


def test_order_is_seeded_and_blind(tmp_path):
    run = _evaluated_run(tmp_path)
    r1 = ab.start_review(run, seed=7, resume=False)
    r2 = ab.start_review(run, seed=7, resume=False)
    assert [p.a_is for p in r1.pairs] == [p.a_is for p in r2.pairs]
    assert len(r1) == 6  # the sample without a base answer is left out
    for p in r1.pairs:
        assert {p.a, p.b} == {f"base answer {p.index}", f"tuned answer {p.index}"}
        assert (p.a == f"tuned answer {p.index}") == (p.a_is == "tuned")
    orders = {
        tuple(p.a_is for p in ab.start_review(run, seed=s, resume=False).pairs) for s in range(8)
    }
    assert len(orders) > 1, "the order must depend on the seed"


def test_picks_are_saved_and_scored(tmp_path):
    run = _evaluated_run(tmp_path)
    review = ab.start_review(run, seed=3, resume=False)
    # Pick the tuned answer for pairs 0-2, the base for 3, tie for 4; leave 5 unjudged.
    for i in range(3):
        review.pick(i, "A" if review.pairs[i].a_is == "tuned" else "B")
    review.pick(3, "A" if review.pairs[3].a_is == "base" else "B")
    review.pick(4, "tie")
    assert review.next_unjudged() == 5 and not review.done

    data = json.loads((run.path / names.AB_REVIEW_FILE).read_text())
    assert data["seed"] == 3
    assert [p["winner"] for p in data["picks"]] == ["tuned", "tuned", "tuned", "base", "tie"]
    s = data["summary"]
    assert (s["tuned_wins"], s["base_wins"], s["ties"], s["judged"], s["pairs"]) == (3, 1, 1, 5, 6)
    assert s["win_rate"] == pytest.approx(3.5 / 5)
    assert s["decisive_win_rate"] == pytest.approx(3 / 4)

    resumed = ab.start_review(run)  # resumes the saved review
    assert resumed.seed == 3 and resumed.picks == review.picks
    assert [p.a for p in resumed.pairs] == [p.a for p in review.pairs]
    assert resumed.summary()["win_rate"] == pytest.approx(3.5 / 5)
    resumed.unpick(4)
    assert ab.load_review(run).summary()["judged"] == 4


def test_bad_picks_and_missing_eval(tmp_path):
    run = _evaluated_run(tmp_path)
    review = ab.start_review(run, seed=1, resume=False)
    with pytest.raises(ab.ReviewError):
        review.pick(0, "C")
    with pytest.raises(ab.ReviewError):
        review.pick(99, "A")
    fresh = create_run(RunConfig(name="no-eval"), root=tmp_path)
    with pytest.raises(ab.ReviewError, match="spark-tui eval"):
        ab.start_review(fresh)
