"""Evaluate a trained run on its held-out split, tuned model against base model.

`evaluate_run(run)` measures, on the run's validation split
(`spark_tui.core.evaluate.heldout`):

* **loss and perplexity** on the trained (assistant) tokens
  (`spark_tui.core.evaluate.likelihood`);
* **generation** on held-out prompts — greedy, at most ``max_new_tokens``
  (`spark_tui.core.evaluate.generate`) — scored against the references with
  ROUGE-1/2/L and BLEU (`spark_tui.core.evaluate.scores`);
* for **preference runs**, reward accuracy and margin on the validation pairs
  (`spark_tui.core.evaluate.preference`).

The base and the tuned model answer the same prompts
(`spark_tui.core.evaluate.models`).  Results go to ``eval.json`` in the run
folder (atomic write; read back with `spark_tui.core.evaluate.results`).
`progress(fraction, message)` is called along the way and `cancel()` is polled
between batches (it raises `EvalCancelled`).  Nothing is printed: torch /
transformers are imported lazily and their logging is muted.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from spark_tui.core.base import names
from spark_tui.core.base.atomic import atomic_write_json
from spark_tui.core.evaluate.generate import generate_answers, generate_both
from spark_tui.core.evaluate.heldout import Encoder, batches, data_layout, load_split
from spark_tui.core.evaluate.likelihood import logps, loss_over, reward_scores
from spark_tui.core.evaluate.models import RunModels, load_run_models
from spark_tui.core.evaluate.preference import (
    PREFERENCE_OBJECTIVES,
    implicit_rewards,
    kto_summary,
    logp_accuracy,
    pair_summary,
)
from spark_tui.core.evaluate.progress import CancelCheck, Progress, Steps
from spark_tui.core.evaluate.quiet import quiet
from spark_tui.core.evaluate.scores import corpus_scores, text_scores
from spark_tui.core.train.runs import Run, resolve_run

EVAL_VERSION = 1
BOTH_ANSWER = "base and tuned: answering held-out prompts"


@dataclass
class EvalOptions:
    """How much to evaluate.  The defaults take about a minute on a laptop CPU."""

    max_prompts: int = 8  # held-out prompts answered by base and tuned (0 = no generation)
    max_new_tokens: int = 96  # greedy generation bound per answer
    max_rows: int = 200  # validation rows used for loss / preference metrics (0 = all)
    max_length: int = 0  # tokens per row; 0 = the run's data.max_length
    batch_size: int = 4  # rows per scoring batch (up to 4x this when rows are short)
    gen_batch_size: int = 16  # prompts answered per generate call
    compare_base: bool = True  # also score the base model
    base_only: bool = False  # score only the base model (e.g. before training)
    device: str = "auto"  # "auto", "cuda", "cpu" or "mps"
    split: str = "validation"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_run(
    run: Run | str | Path,
    options: EvalOptions | None = None,
    *,
    progress: Progress | None = None,
    cancel: CancelCheck | None = None,
    save: bool = True,
    models: RunModels | None = None,
) -> dict[str, Any]:
    """Evaluate `run` on its validation split; returns (and saves) the eval.json dict.

    Pass already-loaded `models` (from `load_run_models`) to reuse them.
    """
    opts = options or EvalOptions()
    run = run if isinstance(run, Run) else resolve_run(run)
    cfg = run.config()
    started = time.time()
    report = progress or (lambda _f, _m: None)
    objective = cfg.method.objective
    steps = Steps(2, progress, cancel, 0.0, 0.05)
    steps.report("loading the validation split")
    ds = load_split(run, opts.split)
    layout = data_layout(ds)
    # A big validation split is capped (max_rows), and the report says of how many.
    rows = [ds[i] for i in range(len(ds) if opts.max_rows <= 0 else min(len(ds), opts.max_rows))]
    rows_total = len(ds)
    steps.advance(1, "loading the model")
    own_models = models is None
    with quiet():
        if models is None:
            models = load_run_models(
                run, device=opts.device, output="base" if opts.base_only else "auto"
            )
        try:
            result = _evaluate_loaded(run, cfg, models, rows, layout, opts, progress, cancel)
        finally:
            if own_models:
                models.close()
    result.update(
        rows_total=rows_total,
        version=EVAL_VERSION,
        run_id=run.id,
        objective=objective,
        adapter=cfg.method.adapter,
        model=cfg.model.id,
        split=opts.split,
        layout=layout,
        device=models.device,
        options=opts.to_dict(),
        created=time.time(),
        elapsed_s=round(time.time() - started, 3),
    )
    if save:
        atomic_write_json(run.path / names.EVAL_FILE, result)
    report(1.0, "evaluation finished")
    return result


def _evaluate_loaded(
    run: Run,
    cfg: Any,
    models: RunModels,
    rows: list[dict[str, Any]],
    layout: str,
    opts: EvalOptions,
    progress: Progress | None,
    cancel: CancelCheck | None,
) -> dict[str, Any]:
    objective = cfg.method.objective
    max_length = opts.max_length or cfg.data.max_length
    enc = Encoder(models, max_length=max_length)
    sides = ["tuned", "base"] if opts.compare_base and models.has_tuned else ["tuned"]
    if not models.has_tuned:
        sides = ["base"]
    if models.task == "reward":
        sides = ["tuned"]  # the base has no trained reward head: its scores mean nothing

    # What to encode.
    loss_rows: list[tuple[list[int], list[int]]] = []
    pref_pairs: list[tuple[tuple[list[int], list[int]], tuple[list[int], list[int]]]] = []
    kto_rows: list[tuple[tuple[list[int], list[int]], bool]] = []
    prompts: list[list[dict[str, str]]] = []
    references: list[str] = []
    reward_texts: list[tuple[str, str]] = []
    loss_on = "assistant tokens"
    for row in rows:
        if layout == "messages":
            conv = list(row["messages"])
            ids, labels = enc.conversation(conv)
            if any(x != -100 for x in labels[1:]):
                loss_rows.append((ids, labels))
            last = max((i for i, m in enumerate(conv) if m["role"] == "assistant"), default=-1)
            if last > 0:
                prompts.append(conv[:last])
                references.append(conv[last]["content"])
        elif layout == "text":
            loss_on = "all tokens (plain text)"
            loss_rows.append(enc.text(row["text"]))
        elif layout == "preference":
            loss_on = "chosen answers"
            prompt, chosen, rejected = (
                list(row["prompt"]),
                list(row["chosen"]),
                list(row["rejected"]),
            )
            if models.task == "reward":
                reward_texts.append(
                    (enc.renderer.render(prompt + chosen), enc.renderer.render(prompt + rejected))
                )
                continue
            c = enc.completion(prompt, chosen)
            r = enc.completion(prompt, rejected)
            pref_pairs.append((c, r))
            loss_rows.append(c)
            prompts.append(prompt)
            references.append(chosen[-1]["content"] if chosen else "")
        elif layout == "kto":
            loss_on = "desirable completions"
            prompt, completion = list(row["prompt"]), list(row["completion"])
            c = enc.completion(prompt, completion)
            kto_rows.append((c, bool(row["label"])))
            if row["label"]:
                loss_rows.append(c)
                prompts.append(prompt)
                references.append(completion[-1]["content"] if completion else "")
    n_prompts = max(0, min(opts.max_prompts, len(prompts)))
    if models.task == "reward":
        n_prompts = 0
    prompts, references = prompts[:n_prompts], references[:n_prompts]

    units = len(sides) * (len(loss_rows) + 2 * len(pref_pairs) + len(kto_rows) + n_prompts)
    units += 2 * len(reward_texts)
    steps = Steps(units, progress, cancel, 0.05, 0.99)
    steps.report("evaluating")

    result: dict[str, Any] = {"loss_on": loss_on, "rows": len(rows)}
    answers: dict[str, list[str]] = {}
    pref_logps: dict[str, list[tuple[float, int]]] = {}
    kto_logps: dict[str, list[tuple[float, int]]] = {}
    if n_prompts and len(sides) == 2 and models.can_mix_sides:
        steps.begin(BOTH_ANSWER)
        answers = generate_both(
            models,
            prompts,
            max_new_tokens=opts.max_new_tokens,
            batch_size=opts.gen_batch_size,
            on_batch=lambda k: steps.advance(k, BOTH_ANSWER, of=2 * n_prompts, unit="answers"),
        )
    for side in sides:
        block: dict[str, Any] = {}
        if loss_rows:
            block.update(loss_over(models, side, loss_rows, opts.batch_size, steps))
        if pref_pairs:
            flat = [x for pair in pref_pairs for x in pair]
            lps = logps(models, side, flat, opts.batch_size, steps)
            pref_logps[side] = lps
            block["logp_accuracy"] = logp_accuracy(lps)
        if kto_rows:
            kto_logps[side] = logps(models, side, [c for c, _ in kto_rows], opts.batch_size, steps)
        if n_prompts and side not in answers:
            steps.begin(f"{side}: answering held-out prompts")
            answers[side] = generate_answers(
                models,
                prompts,
                side=side,
                max_new_tokens=opts.max_new_tokens,
                batch_size=opts.gen_batch_size,
                on_batch=lambda k, s=side: steps.advance(
                    k, f"{s}: answering held-out prompts", of=n_prompts, unit="answers"
                ),
            )
        if n_prompts:
            block.update(corpus_scores(answers[side], references))
        result[side] = block
        if side == "base":
            models.release_base()

    beta = cfg.preference.beta_for(objective)
    if pref_pairs and objective in PREFERENCE_OBJECTIVES and objective != "kto":
        tuned = pref_logps.get("tuned")
        base = pref_logps.get("base")
        if tuned is not None and (objective in ("simpo", "orpo") or base is not None):
            rewards = implicit_rewards(objective, beta, tuned, base)
            ch, rj = rewards[0::2], rewards[1::2]
            result["preference"] = pair_summary(objective, beta, ch, rj)
    if kto_rows and "tuned" in kto_logps and "base" in kto_logps:
        rewards = implicit_rewards("kto", beta, kto_logps["tuned"], kto_logps["base"])
        result["preference"] = kto_summary(beta, rewards, [lab for _, lab in kto_rows])
    if reward_texts:
        with models.use("tuned") as model:
            ch_s: list[float] = []
            rj_s: list[float] = []
            for chunk in batches(reward_texts, opts.batch_size):
                ch_s += reward_scores(model, [c for c, _ in chunk], models.tokenizer, models.device)
                rj_s += reward_scores(model, [r for _, r in chunk], models.tokenizer, models.device)
                steps.advance(2 * len(chunk), "scoring preference pairs", of=2 * len(reward_texts))
        result["preference"] = pair_summary("reward", 1.0, ch_s, rj_s)
        result["tuned"]["reward_accuracy"] = result["preference"]["accuracy"]

    samples = []
    for i, (prompt, ref) in enumerate(zip(prompts, references, strict=True)):
        sample: dict[str, Any] = {
            "prompt": _prompt_text(prompt),
            "messages": prompt,
            "reference": ref,
        }
        for side in sides:
            if side in answers:
                sample[side] = answers[side][i]
                sample[f"{side}_scores"] = text_scores(answers[side][i], ref)
        samples.append(sample)
    result["samples"] = samples
    result["template"] = models.template
    return result


def _prompt_text(messages: list[dict[str, str]]) -> str:
    users = [m["content"] for m in messages if m.get("role") == "user"]
    return users[-1] if users else (messages[-1]["content"] if messages else "")
