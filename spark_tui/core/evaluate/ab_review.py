"""Blind A/B review: a person judges base vs tuned answers without knowing which is which.

The answers come from the run's ``eval.json`` (the Evaluate step answers the
same held-out prompts with the base and the tuned model).  For each prompt the
two answers are shown as "A" and "B" in an order drawn from a seeded random
generator, so the review is blind but reproducible: the same seed always gives
the same order, and the order is saved with the picks.

Picks are "A", "B" or "tie".  They are saved, with the order and the summary,
to ``ab_review.json`` in the run folder after every pick (atomic write), so a
review can be closed and resumed.

**Win rate.**  ``win_rate = (tuned wins + ½ · ties) / judged`` — ties count as
half a win for each side, the usual convention for pairwise human preference
(it is 0.5 when the two models are indistinguishable).  The summary also
reports the ties separately and ``decisive_win_rate = tuned wins / (tuned wins
+ base wins)``, which leaves ties out (None when every pick was a tie).
Prompts not judged yet are not counted.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spark_tui.core.base import names
from spark_tui.core.base.atomic import atomic_write_json, read_json
from spark_tui.core.base.errors import SparkError
from spark_tui.core.evaluate.results import load_eval
from spark_tui.core.train.runs import Run, resolve_run

PICKS = ("A", "B", "tie")


class ReviewError(SparkError):
    """A review that cannot be built or a pick that is not allowed."""


@dataclass
class ABPair:
    """One blind comparison: `a` and `b` are the two answers; `a_is` says whose `a` is."""

    index: int
    prompt: str
    reference: str
    a: str
    b: str
    a_is: str  # "base" or "tuned" (hidden from the reviewer)

    @property
    def b_is(self) -> str:
        return "tuned" if self.a_is == "base" else "base"

    def winner(self, pick: str) -> str:
        """ "base", "tuned" or "tie" for a pick of "A", "B" or "tie"."""
        if pick == "tie":
            return "tie"
        if pick == "A":
            return self.a_is
        if pick == "B":
            return self.b_is
        raise ReviewError(f"a pick is one of A, B or tie, not {pick!r}")


def build_pairs(samples: list[dict[str, Any]], seed: int) -> list[ABPair]:
    """Pairs from eval samples (each with "base" and "tuned" answers), in a seeded random order."""
    rng = random.Random(seed)
    pairs = []
    for i, s in enumerate(samples):
        if "base" not in s or "tuned" not in s:
            continue
        tuned_first = rng.random() < 0.5
        a, b = (s["tuned"], s["base"]) if tuned_first else (s["base"], s["tuned"])
        pairs.append(
            ABPair(
                index=i,
                prompt=str(s.get("prompt", "")),
                reference=str(s.get("reference", "")),
                a=a,
                b=b,
                a_is="tuned" if tuned_first else "base",
            )
        )
    return pairs


def win_rate(winners: list[str]) -> dict[str, Any]:
    """Summary of judged outcomes ("base", "tuned" or "tie"); see the module doc."""
    tuned = sum(1 for w in winners if w == "tuned")
    base = sum(1 for w in winners if w == "base")
    ties = sum(1 for w in winners if w == "tie")
    judged = tuned + base + ties
    return {
        "judged": judged,
        "tuned_wins": tuned,
        "base_wins": base,
        "ties": ties,
        "win_rate": (tuned + 0.5 * ties) / judged if judged else None,
        "decisive_win_rate": tuned / (tuned + base) if (tuned + base) else None,
        "ties_counted_as": "half a win for each side in win_rate; left out of decisive_win_rate",
    }


@dataclass
class ABReview:
    """A blind review in progress; `picks` maps pair position -> "A" / "B" / "tie"."""

    run: Run
    seed: int
    pairs: list[ABPair]
    picks: dict[int, str] = field(default_factory=dict)
    created: float = field(default_factory=time.time)

    @property
    def path(self) -> Path:
        return self.run.path / names.AB_REVIEW_FILE

    def __len__(self) -> int:
        return len(self.pairs)

    def next_unjudged(self) -> int | None:
        for i in range(len(self.pairs)):
            if i not in self.picks:
                return i
        return None

    @property
    def done(self) -> bool:
        return self.next_unjudged() is None

    def pick(self, position: int, choice: str, *, save: bool = True) -> None:
        """Record the reviewer's choice for pair `position` (0-based) and save."""
        if not 0 <= position < len(self.pairs):
            raise ReviewError(f"no pair {position}; there are {len(self.pairs)}")
        if choice not in PICKS:
            raise ReviewError(f"a pick is one of A, B or tie, not {choice!r}")
        self.picks[position] = choice
        if save:
            self.save()

    def unpick(self, position: int, *, save: bool = True) -> None:
        self.picks.pop(position, None)
        if save:
            self.save()

    def winners(self) -> list[str]:
        return [self.pairs[i].winner(p) for i, p in sorted(self.picks.items())]

    def summary(self) -> dict[str, Any]:
        out = win_rate(self.winners())
        out["pairs"] = len(self.pairs)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "run_id": self.run.id,
            "seed": self.seed,
            "created": self.created,
            "updated": time.time(),
            "pairs": [asdict(p) for p in self.pairs],
            "picks": [
                {
                    "position": i,
                    "index": self.pairs[i].index,
                    "pick": p,
                    "winner": self.pairs[i].winner(p),
                }
                for i, p in sorted(self.picks.items())
            ],
            "summary": self.summary(),
        }

    def save(self) -> Path:
        atomic_write_json(self.path, self.to_dict())
        return self.path


def start_review(
    run: Run | str | Path, *, seed: int | None = None, resume: bool = True
) -> ABReview:
    """A blind review of the run's eval samples; resumes a saved one unless `resume=False`.

    Needs ``eval.json`` with base and tuned answers (run the evaluation first).
    """
    run = run if isinstance(run, Run) else resolve_run(run)
    if resume:
        saved = load_review(run)
        if saved is not None and (seed is None or saved.seed == seed):
            return saved
    result = load_eval(run)
    if result is None:
        raise ReviewError(
            f"run {run.id} has not been evaluated yet; run the evaluation "
            f"(`spark-tui eval {run.id}`) so base and tuned answer the same prompts"
        )
    seed = int(seed if seed is not None else random.SystemRandom().randrange(1 << 31))
    pairs = build_pairs(list(result.get("samples") or []), seed)
    if not pairs:
        raise ReviewError(
            f"the evaluation of run {run.id} has no prompts answered by both base and tuned; "
            "evaluate again with base comparison on and at least one prompt"
        )
    return ABReview(run=run, seed=seed, pairs=pairs)


def load_review(run: Run | str | Path) -> ABReview | None:
    """The saved review of a run (ab_review.json), or None."""
    run = run if isinstance(run, Run) else resolve_run(run)
    data = read_json(run.path / names.AB_REVIEW_FILE, default=None)
    if not isinstance(data, dict) or "pairs" not in data:
        return None
    try:
        pairs = [ABPair(**p) for p in data["pairs"]]
        picks = {int(p["position"]): str(p["pick"]) for p in data.get("picks", [])}
    except (TypeError, KeyError, ValueError) as exc:
        raise ReviewError(
            f"{run.path / names.AB_REVIEW_FILE} is damaged ({exc}); delete it to start over"
        ) from exc
    return ABReview(
        run=run,
        seed=int(data.get("seed", 0)),
        pairs=pairs,
        picks=picks,
        created=float(data.get("created", time.time())),
    )
