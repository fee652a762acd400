"""Evaluate a trained run on its held-out split, tuned model against base model.

`evaluate_run(run)` measures, on the run's validation split (the prepared
DatasetDict the training engine saved in ``<run>/data``):

* **loss and perplexity** — mean negative log-likelihood per trained token and
  ``exp`` of it.  As in training, only the assistant tokens count: the chat
  template's ``{% generation %}`` markers (or its training twin) say which
  characters are the answers; templates without markers fall back to
  "everything after the rendered prompt of each answer".  The loss is
  token-weighted over the whole split (a long answer counts more than a short
  one), exactly what the trainer's eval loss estimates.
* **generation** on held-out prompts — greedy, at most ``max_new_tokens`` —
  scored against the references with ROUGE-1/2/L (the `rouge-score` package,
  F-measure, stemming on, 0..1) and BLEU (`sacrebleu`, 0..100).  Per sample
  scores are sentence scores; the summary is the mean ROUGE F1 and the corpus
  BLEU over all samples.
* for **preference runs**, reward accuracy and margin on the validation pairs.
  The implicit reward follows the objective the run was trained with:

  - DPO / KTO: ``β · Σ (log π_tuned − log π_base)`` over the completion tokens
    (the reference is the base model, i.e. the adapter switched off);
  - SimPO / ORPO: ``β · mean log π_tuned`` over the completion tokens
    (reference-free, length-normalised, as their trainers log it; ORPO's β is
    ``preference.orpo_lambda``);
  - reward models: the score of the chosen answer minus that of the rejected one.

  Accuracy is the share of pairs whose chosen reward beats the rejected one
  (for KTO: whose reward sign matches the label) and the margin is the mean
  difference.  Both models also get a reference-free "log-prob accuracy"
  (mean log-prob of chosen > rejected) so base and tuned can be compared.

The base and the tuned model answer the same prompts; with a PEFT adapter only
one copy of the weights is loaded and the base is the same model inside
PEFT's ``disable_adapter()``.  Results go to ``eval.json`` in the run folder
(atomic write).  `progress(fraction, message)` is called along the way and
`cancel()` is polled between batches (it raises `EvalCancelled`).  Nothing is
printed: torch / transformers are imported lazily and their logging is muted.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spark_tui.core.errors import SparkError
from spark_tui.core.fsutil import atomic_write_json, read_json
from spark_tui.core.runs import Run, resolve_run

EVAL_FILE = "eval.json"
EVAL_VERSION = 1
ROUGE_KEYS = ("rouge1", "rouge2", "rougeL")

Progress = Callable[[float, str], None]
CancelCheck = Callable[[], bool]

_PREFERENCE = ("dpo", "simpo", "orpo", "kto", "reward")


class EvalError(SparkError):
    """A run that cannot be evaluated; the message says why and what to do."""


class EvalCancelled(SparkError):
    """The caller's cancel check returned True."""

    def __init__(self) -> None:
        super().__init__("evaluation cancelled")


@dataclass
class EvalOptions:
    """How much to evaluate.  The defaults take about a minute on a laptop CPU."""

    max_prompts: int = 8  # held-out prompts answered by base and tuned (0 = no generation)
    max_new_tokens: int = 96  # greedy generation bound per answer
    max_rows: int = 200  # validation rows used for loss / preference metrics (0 = all)
    max_length: int = 0  # tokens per row; 0 = the run's data.max_length
    batch_size: int = 4
    compare_base: bool = True  # also score the base model
    base_only: bool = False  # score only the base model (e.g. before training)
    device: str = "auto"  # "auto", "cuda", "cpu" or "mps"
    split: str = "validation"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- text scores


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


# --------------------------------------------------------------------------- quiet


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Mute library logging and warnings (they would draw over the TUI)."""
    from spark_tui.core.models import quiet_transformers

    loggers = [
        logging.getLogger(n) for n in ("bitsandbytes", "peft", "accelerate", "absl", "datasets")
    ]
    old = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), quiet_transformers():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lvl in zip(loggers, old, strict=True):
            lg.setLevel(lvl)


# --------------------------------------------------------------------------- loading


def pick_device(requested: str = "auto") -> str:
    import torch

    if requested and requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():  # pragma: no cover - macOS only
        return "mps"
    return "cpu"


def dtype_for(device: str) -> Any:
    import torch

    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def has_tokenizer(folder: Path) -> bool:
    return folder.is_dir() and (
        (folder / "tokenizer_config.json").exists() or (folder / "tokenizer.json").exists()
    )


def _is_peft_folder(folder: Path) -> bool:
    return (folder / "adapter_config.json").exists()


@dataclass
class RunModels:
    """The tuned model of a run plus a way to switch to its base.

    ``use("tuned")`` / ``use("base")`` are context managers that yield a model.
    With a PEFT adapter both are the same object (the base is the adapter
    switched off); for full fine-tuning the base is loaded on first use.
    """

    run: Run | None
    tokenizer: Any
    template: str  # the chat template used for prompts (the run's)
    training_template: str | None  # its twin with {% generation %} markers, if known
    model: Any  # the tuned model (PeftModel for adapters); the base when there is no run output
    device: str
    kind: str  # "peft", "full" or "base"
    task: str  # "causal" or "reward"
    base_path: str
    stop_ids: list[int] = field(default_factory=list)
    _base: Any = None
    _load_kw: dict[str, Any] = field(default_factory=dict)

    @property
    def has_tuned(self) -> bool:
        return self.kind in ("peft", "full")

    @contextlib.contextmanager
    def use(self, side: str) -> Iterator[Any]:
        if side not in ("base", "tuned"):
            raise ValueError(f"side must be 'base' or 'tuned', not {side!r}")
        if side == "tuned" or self.kind == "base":
            if side == "tuned" and not self.has_tuned:
                raise EvalError("this model has no tuned weights (no adapter/ or model/ folder)")
            yield self.model
        elif self.kind == "peft":
            with self.model.disable_adapter():
                yield self.model
        else:
            yield self.base_model()

    def base_model(self) -> Any:
        if self.kind != "full":
            return self.model
        if self._base is None:
            self._base = load_plain_model(
                self.base_path, self.task, self.device, self._load_kw, self.tokenizer
            )
        return self._base

    def release_base(self) -> None:
        """Free a separately loaded base model (full fine-tuning only)."""
        self._base = None
        _free_memory(self.device)

    def close(self) -> None:
        self._base = None
        self.model = None
        _free_memory(self.device)


def _free_memory(device: str) -> None:
    import gc

    gc.collect()
    if device == "cuda":
        with contextlib.suppress(Exception):
            import torch

            torch.cuda.empty_cache()


def load_plain_model(path: str, task: str, device: str, kw: dict[str, Any], tok: Any) -> Any:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    cls = AutoModelForSequenceClassification if task == "reward" else AutoModelForCausalLM
    extra = {"num_labels": 1} if task == "reward" else {}
    model = cls.from_pretrained(path, **kw, **extra)
    if getattr(model.config, "pad_token_id", None) is None and tok is not None:
        model.config.pad_token_id = tok.pad_token_id
    if "device_map" not in kw:
        model.to(device)
    model.eval()
    return model


def resolve_template(tokenizer: Any, choice: str = "auto") -> tuple[str, str | None]:
    """(chat template, its training twin with generation markers or None)."""
    from spark_tui.core.data.templates import resolve_chat_template, training_chat_template

    chosen = resolve_chat_template(tokenizer, choice)
    return chosen.template, training_chat_template(chosen.template)


def load_run_models(
    run: Run | str | Path,
    *,
    device: str = "auto",
    task: str | None = None,
    output: str = "auto",
) -> RunModels:
    """Load the run's tuned model (adapter on a base, or full weights) and tokenizer.

    `output`: "auto" (adapter/ or model/, whichever the run has), "merged" (the
    exported merged/ folder), or "base" (no tuned weights: the base model only).
    """
    run = run if isinstance(run, Run) else resolve_run(run)
    cfg = run.config()
    from spark_tui.core import methods
    from spark_tui.core.models import resolve_model_path

    task = task or ("reward" if cfg.method.objective == "reward" else "causal")
    device = pick_device(device)
    base_path = resolve_model_path(cfg.model.id)
    if output == "merged":
        folder = run.path / "merged"
        if not (folder / "config.json").exists():
            raise EvalError(f"{run.id} has no merged model; export it first (Export step)")
        kind = "full"
    elif output == "base":
        folder, kind = None, "base"
    else:
        folder = run.output_dir
        if run.model_dir.exists() and (run.model_dir / "config.json").exists():
            kind = "full"
        elif _is_peft_folder(run.adapter_dir):
            kind = "peft"
        else:
            raise EvalError(
                f"run {run.id} has no trained weights yet (no adapter/ or model/ folder); "
                "train it first, or evaluate the base model only (`spark-tui eval --base-only`)"
            )
    try:
        with quiet():
            from transformers import AutoTokenizer

            tok_src = str(folder) if folder is not None and has_tokenizer(folder) else base_path
            tok = AutoTokenizer.from_pretrained(
                tok_src, trust_remote_code=cfg.model.trust_remote_code
            )
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
            template, training_template = resolve_template(tok, cfg.model.chat_template)
            tok.chat_template = template

            kw: dict[str, Any] = {
                "dtype": dtype_for(device),
                "trust_remote_code": bool(cfg.model.trust_remote_code),
            }
            if cfg.model.revision:
                kw["revision"] = cfg.model.revision
            if kind == "peft" and cfg.method.adapter == "qlora":
                if device == "cpu":
                    hw = methods.Hardware(device="cpu", name="CPU", bf16=False, fp16=False)
                else:
                    hw = methods.detect_hardware()
                q = methods.bnb_config(cfg, hw, methods.choose_precision("auto", hw))
                if q is not None:
                    kw["quantization_config"] = q
                    kw["dtype"] = q.bnb_4bit_compute_dtype
                    if device == "cuda":
                        kw["device_map"] = {"": 0}
            base_kw = {
                k: v for k, v in kw.items() if k != "quantization_config" and k != "device_map"
            }
            if kind == "full":
                model = load_plain_model(str(folder), task, device, {**base_kw}, tok)
            elif kind == "peft":
                from peft import PeftModel

                base = load_plain_model(base_path, task, device, kw, tok)
                model = PeftModel.from_pretrained(base, str(folder), is_trainable=False)
                if "device_map" not in kw:
                    model.to(device)
                model.eval()
            else:
                model = load_plain_model(base_path, task, device, kw, tok)
    except SparkError:
        raise
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EvalError(f"cannot load the model of run {run.id}: {first}") from exc
    from spark_tui.core.chat import stop_token_ids

    return RunModels(
        run=run,
        tokenizer=tok,
        template=template,
        training_template=training_template,
        model=model,
        device=device,
        kind=kind,
        task=task,
        base_path=base_path,
        stop_ids=stop_token_ids(tok, template),
        _load_kw=base_kw,
    )


# --------------------------------------------------------------------------- data


def load_split(run: Run, split: str = "validation") -> Any:
    """The run's prepared split (a datasets.Dataset), or an EvalError saying what to do."""
    folder = run.data_dir
    if not (folder / "dataset_dict.json").exists():
        raise EvalError(
            f"run {run.id} has no prepared data in {folder}; train it (the training "
            "step prepares and saves the data) before evaluating"
        )
    from datasets import load_from_disk

    with quiet():
        dd = load_from_disk(str(folder))
    if split not in dd or len(dd[split]) == 0:
        raise EvalError(
            f"run {run.id} has no {split} rows; set data.val_fraction above 0 "
            "(or data.validation_path) and train again to evaluate on held-out data"
        )
    return dd[split]


def _layout(ds: Any) -> str:
    cols = set(ds.column_names)
    if "messages" in cols:
        return "messages"
    if "chosen" in cols and "rejected" in cols:
        return "preference"
    if "completion" in cols:
        return "kto"
    if "text" in cols:
        return "text"
    raise EvalError(f"unknown prepared data layout with columns {sorted(cols)}")


class _Encoder:
    """Turns rows into token ids with labels on the trained (assistant) tokens only."""

    def __init__(self, models: RunModels, max_length: int) -> None:
        from spark_tui.core.data.templates import Renderer

        self.tok = models.tokenizer
        self.max_length = max_length
        self.renderer = Renderer(models.template, self.tok)
        gen = models.training_template
        self.gen_renderer = Renderer(gen, self.tok) if gen else None

    def prompt_text(self, messages: list[dict[str, str]]) -> str:
        return self.renderer.render(messages, add_generation_prompt=True)

    def _spans(self, conv: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
        if self.gen_renderer is not None:
            text, spans = self.gen_renderer.render_with_generation(conv)
            if spans:
                return text, [(int(a), int(b)) for a, b in spans]
        full = self.renderer.render(conv)
        spans: list[tuple[int, int]] = []
        pos = 0
        for i, m in enumerate(conv):
            if m["role"] != "assistant":
                continue
            before = self.renderer.render(conv[:i], add_generation_prompt=True)
            upto = self.renderer.render(conv[: i + 1])
            if full.startswith(before) and full.startswith(upto) and len(upto) > len(before):
                spans.append((len(before), len(upto)))
                pos = len(upto)
            else:
                at = full.find(m["content"], pos)
                if at >= 0:
                    spans.append((at, at + len(m["content"])))
                    pos = at + len(m["content"])
        return full, spans

    def conversation(self, conv: list[dict[str, str]]) -> tuple[list[int], list[int]]:
        """(input_ids, labels) for a conversation; labels are -100 outside the answers."""
        text, spans = self._spans(conv)
        enc = self.tok(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(enc["input_ids"])[: self.max_length]
        labels = []
        for tid, (a, b) in zip(ids, enc["offset_mapping"], strict=False):
            mid = (a + b - 1) // 2 if b > a else a
            labels.append(tid if any(s <= mid < e for s, e in spans) else -100)
        return ids, labels

    def text(self, text: str) -> tuple[list[int], list[int]]:
        eos = self.tok.eos_token if isinstance(self.tok.eos_token, str) else ""
        ids = list(self.tok(text + eos, add_special_tokens=False)["input_ids"])[: self.max_length]
        return ids, list(ids)

    def completion(
        self, prompt: list[dict[str, str]], completion: list[dict[str, str]]
    ) -> tuple[list[int], list[int]]:
        """Prompt rendered with the generation prompt, then the completion (as TRL does)."""
        ptext = self.prompt_text(prompt)
        full = self.renderer.render(prompt + completion)
        ctext = full[len(ptext) :] if full.startswith(ptext) else full
        p_ids = list(self.tok(ptext, add_special_tokens=False)["input_ids"])
        c_ids = list(self.tok(ctext, add_special_tokens=False)["input_ids"])
        keep_c = max(1, min(len(c_ids), self.max_length // 2, self.max_length - len(p_ids)))
        c_ids = c_ids[:keep_c]
        p_ids = (
            p_ids[-(self.max_length - len(c_ids)) :]
            if len(p_ids) + len(c_ids) > self.max_length
            else p_ids
        )
        return p_ids + c_ids, [-100] * len(p_ids) + c_ids


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    size = max(1, int(size))
    for i in range(0, len(items), size):
        yield items[i : i + size]


def token_nll(
    model: Any, encoded: Sequence[tuple[list[int], list[int]]], pad_id: int, device: str
) -> list[tuple[float, int]]:
    """(sum of NLL over labelled tokens, number of labelled tokens) per row, in one batch."""
    import torch
    import torch.nn.functional as F

    n = len(encoded)
    width = max(len(ids) for ids, _ in encoded)
    ids_t = torch.full((n, width), int(pad_id), dtype=torch.long)
    lab_t = torch.full((n, width), -100, dtype=torch.long)
    att_t = torch.zeros((n, width), dtype=torch.long)
    for i, (ids, labels) in enumerate(encoded):
        ids_t[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        lab_t[i, : len(labels)] = torch.tensor(labels, dtype=torch.long)
        att_t[i, : len(ids)] = 1
    dev = _model_device(model, device)
    with torch.inference_mode():
        out = model(input_ids=ids_t.to(dev), attention_mask=att_t.to(dev), use_cache=False)
        logits = out.logits[:, -width:, :]  # prompt tuning prepends virtual tokens
        shift_logits = logits[:, :-1, :].float()
        shift_labels = lab_t[:, 1:].to(shift_logits.device)
        nll = F.cross_entropy(
            shift_logits.transpose(1, 2), shift_labels, ignore_index=-100, reduction="none"
        )
        mask = shift_labels != -100
        sums = (nll * mask).sum(dim=1).tolist()
        counts = mask.sum(dim=1).tolist()
    return [(float(s), int(c)) for s, c in zip(sums, counts, strict=True)]


def _model_device(model: Any, fallback: str) -> Any:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return fallback


def reward_scores(model: Any, texts: Sequence[str], tok: Any, device: str) -> list[float]:
    """Scores of a reward model (a 1-label sequence classifier) for full texts."""
    import torch

    enc = tok(list(texts), add_special_tokens=False, padding=True, return_tensors="pt")
    dev = _model_device(model, device)
    with torch.inference_mode():
        out = model(
            input_ids=enc["input_ids"].to(dev), attention_mask=enc["attention_mask"].to(dev)
        )
    return [float(x) for x in out.logits[:, 0].float().tolist()]


# --------------------------------------------------------------------------- generation


def generate_answers(
    models: RunModels,
    prompts: Sequence[list[dict[str, str]]],
    *,
    side: str = "tuned",
    max_new_tokens: int = 96,
    batch_size: int = 4,
    on_batch: Callable[[int], None] | None = None,
) -> list[str]:
    """Greedy answers of one side ("base" or "tuned") to chat prompts (message lists)."""
    import torch

    from spark_tui.core.chat import generation_config

    tok = models.tokenizer
    enc = _Encoder(models, max_length=1 << 30)
    texts = [enc.prompt_text(p) for p in prompts]
    gen_cfg = generation_config(
        tok, models.stop_ids, temperature=0.0, top_p=1.0, max_new_tokens=max_new_tokens
    )
    answers: list[str] = []
    old_side = tok.padding_side
    tok.padding_side = "left"
    try:
        with models.use(side) as model:
            dev = _model_device(model, models.device)
            for chunk in _batches(texts, batch_size):
                batch = tok(
                    list(chunk), add_special_tokens=False, padding=True, return_tensors="pt"
                )
                with torch.inference_mode():
                    out = model.generate(
                        input_ids=batch["input_ids"].to(dev),
                        attention_mask=batch["attention_mask"].to(dev),
                        generation_config=gen_cfg,
                    )
                new = out[:, batch["input_ids"].shape[1] :]
                for row in new:
                    answers.append(tok.decode(row, skip_special_tokens=True).strip())
                if on_batch is not None:
                    on_batch(len(chunk))
    finally:
        tok.padding_side = old_side
    return answers


# --------------------------------------------------------------------------- the evaluation


class _Steps:
    """Maps units of work onto progress fractions and polls the cancel check."""

    def __init__(
        self,
        total: int,
        progress: Progress | None,
        cancel: CancelCheck | None,
        start: float = 0.0,
        end: float = 1.0,
    ) -> None:
        self.total = max(1, total)
        self.done = 0
        self.progress = progress
        self.cancel = cancel
        self.start = start
        self.end = end

    def check(self) -> None:
        if self.cancel is not None and self.cancel():
            raise EvalCancelled()

    def advance(self, n: int, message: str) -> None:
        self.done += n
        self.report(message)

    def report(self, message: str) -> None:
        self.check()
        if self.progress is not None:
            frac = self.start + (self.end - self.start) * min(1.0, self.done / self.total)
            self.progress(frac, message)


def _ppl(loss: float | None) -> float | None:
    if loss is None or not math.isfinite(loss):
        return None
    try:
        return math.exp(loss)
    except OverflowError:
        return float("inf")


def _loss_over(
    models: RunModels,
    side: str,
    encoded: list[tuple[list[int], list[int]]],
    batch_size: int,
    steps: _Steps,
) -> dict[str, Any]:
    total = 0.0
    count = 0
    pad = models.tokenizer.pad_token_id if models.tokenizer.pad_token_id is not None else 0
    with models.use(side) as model:
        for chunk in _batches(encoded, batch_size):
            for s, c in token_nll(model, chunk, pad, models.device):
                total += s
                count += c
            steps.advance(len(chunk), f"{side}: loss on held-out rows")
    loss = total / count if count else None
    return {"loss": loss, "perplexity": _ppl(loss), "tokens": count}


def _logps(
    models: RunModels,
    side: str,
    encoded: list[tuple[list[int], list[int]]],
    batch_size: int,
    steps: _Steps,
) -> list[tuple[float, int]]:
    """(sum log-prob, tokens) of each completion under one side."""
    out: list[tuple[float, int]] = []
    pad = models.tokenizer.pad_token_id if models.tokenizer.pad_token_id is not None else 0
    with models.use(side) as model:
        for chunk in _batches(encoded, batch_size):
            out.extend((-s, c) for s, c in token_nll(model, chunk, pad, models.device))
            steps.advance(len(chunk), f"{side}: log-probs of preference answers")
    return out


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _avg(lp: tuple[float, int]) -> float:
    return lp[0] / max(1, lp[1])


def implicit_rewards(
    objective: str,
    beta: float,
    tuned: Sequence[tuple[float, int]],
    base: Sequence[tuple[float, int]] | None,
) -> list[float]:
    """Per-completion implicit reward from (sum log-prob, token count) pairs (see module doc)."""
    if objective in ("simpo", "orpo"):
        return [beta * _avg(t) for t in tuned]
    if base is None:
        raise ValueError(f"{objective} rewards need the base model's log-probs")
    return [beta * (t[0] - b[0]) for t, b in zip(tuned, base, strict=True)]


def _reward_description(objective: str, beta: float) -> str:
    if objective in ("simpo", "orpo"):
        return f"β·mean log π_tuned over completion tokens (β={beta:g})"
    if objective == "reward":
        return "reward-model score of chosen minus rejected"
    return f"β·Σ(log π_tuned − log π_base) over completion tokens (β={beta:g})"


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
    steps = _Steps(2, progress, cancel, 0.0, 0.05)
    steps.report("loading the validation split")
    ds = load_split(run, opts.split)
    layout = _layout(ds)
    rows = [ds[i] for i in range(len(ds) if opts.max_rows <= 0 else min(len(ds), opts.max_rows))]
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
        atomic_write_json(run.path / EVAL_FILE, result)
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
    enc = _Encoder(models, max_length=max_length)
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
    steps = _Steps(units, progress, cancel, 0.05, 0.99)
    steps.report("evaluating")

    result: dict[str, Any] = {"loss_on": loss_on, "rows": len(rows)}
    answers: dict[str, list[str]] = {}
    pref_logps: dict[str, list[tuple[float, int]]] = {}
    kto_logps: dict[str, list[tuple[float, int]]] = {}
    for side in sides:
        block: dict[str, Any] = {}
        if loss_rows:
            block.update(_loss_over(models, side, loss_rows, opts.batch_size, steps))
        if pref_pairs:
            flat = [x for pair in pref_pairs for x in pair]
            lps = _logps(models, side, flat, opts.batch_size, steps)
            pref_logps[side] = lps
            ch, rj = lps[0::2], lps[1::2]
            block["logp_accuracy"] = _mean(
                [1.0 if _avg(c) > _avg(r) else 0.0 for c, r in zip(ch, rj, strict=True)]
            )
        if kto_rows:
            kto_logps[side] = _logps(models, side, [c for c, _ in kto_rows], opts.batch_size, steps)
        if n_prompts:
            answers[side] = generate_answers(
                models,
                prompts,
                side=side,
                max_new_tokens=opts.max_new_tokens,
                batch_size=opts.batch_size,
                on_batch=lambda k, s=side: steps.advance(k, f"{s}: answering held-out prompts"),
            )
            block.update(corpus_scores(answers[side], references))
        result[side] = block
        if side == "base":
            models.release_base()

    beta = cfg.preference.orpo_lambda if objective == "orpo" else cfg.preference.beta
    if pref_pairs and objective in _PREFERENCE and objective != "kto":
        tuned = pref_logps.get("tuned")
        base = pref_logps.get("base")
        if tuned is not None and (objective in ("simpo", "orpo") or base is not None):
            rewards = implicit_rewards(objective, beta, tuned, base)
            ch, rj = rewards[0::2], rewards[1::2]
            result["preference"] = _pair_summary(objective, beta, ch, rj)
    if kto_rows and "tuned" in kto_logps and "base" in kto_logps:
        rewards = implicit_rewards("kto", beta, kto_logps["tuned"], kto_logps["base"])
        labels = [lab for _, lab in kto_rows]
        good = [r for r, lab in zip(rewards, labels, strict=True) if lab]
        bad = [r for r, lab in zip(rewards, labels, strict=True) if not lab]
        acc = _mean(
            [1.0 if (r > 0) == lab else 0.0 for r, lab in zip(rewards, labels, strict=True)]
        )
        g, b = _mean(good), _mean(bad)
        result["preference"] = {
            "objective": "kto",
            "reward": _reward_description("kto", beta),
            "beta": beta,
            "examples": len(rewards),
            "accuracy": acc,
            "margin": (g - b) if g is not None and b is not None else None,
            "chosen_reward": g,
            "rejected_reward": b,
        }
    if reward_texts:
        with models.use("tuned") as model:
            ch_s: list[float] = []
            rj_s: list[float] = []
            for chunk in _batches(reward_texts, opts.batch_size):
                ch_s += reward_scores(model, [c for c, _ in chunk], models.tokenizer, models.device)
                rj_s += reward_scores(model, [r for _, r in chunk], models.tokenizer, models.device)
                steps.advance(2 * len(chunk), "scoring preference pairs")
        result["preference"] = _pair_summary("reward", 1.0, ch_s, rj_s)
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


def _pair_summary(
    objective: str, beta: float, chosen: list[float], rejected: list[float]
) -> dict[str, Any]:
    diffs = [c - r for c, r in zip(chosen, rejected, strict=True)]
    return {
        "objective": objective,
        "reward": _reward_description(objective, beta),
        "beta": beta,
        "pairs": len(diffs),
        "accuracy": _mean([1.0 if d > 0 else 0.0 for d in diffs]),
        "margin": _mean(diffs),
        "chosen_reward": _mean(chosen),
        "rejected_reward": _mean(rejected),
    }


def _prompt_text(messages: list[dict[str, str]]) -> str:
    users = [m["content"] for m in messages if m.get("role") == "user"]
    return users[-1] if users else (messages[-1]["content"] if messages else "")


# --------------------------------------------------------------------------- reading results


def load_eval(run: Run | str | Path) -> dict[str, Any] | None:
    """The run's eval.json, or None when it was never evaluated."""
    run = run if isinstance(run, Run) else resolve_run(run)
    data = read_json(run.path / EVAL_FILE, default=None)
    return data if isinstance(data, dict) else None


def headline(result: dict[str, Any]) -> dict[str, Any]:
    """The few numbers a table shows: tuned loss/ppl/ROUGE/BLEU, base ROUGE-L, preference."""
    tuned = result.get("tuned") or {}
    base = result.get("base") or {}
    out: dict[str, Any] = {
        "eval_loss": tuned.get("loss"),
        "perplexity": tuned.get("perplexity"),
        "rouge1": tuned.get("rouge1"),
        "rouge2": tuned.get("rouge2"),
        "rougeL": tuned.get("rougeL"),
        "bleu": tuned.get("bleu"),
        "base_rougeL": base.get("rougeL"),
    }
    pref = result.get("preference")
    if pref:
        out["reward_accuracy"] = pref.get("accuracy")
        out["reward_margin"] = pref.get("margin")
    return out
