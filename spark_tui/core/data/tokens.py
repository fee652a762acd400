"""Token lengths in the model's own tokenizer, batched (the hot path of the data step).

Each row is rendered through the chat template (compiled once) and the texts
are encoded a thousand at a time by the Rust tokenizer, which counts tokens
without building Python lists of ids.  This is the same work a batched
`datasets.map` would do, without its cache files and without it printing
progress bars into the terminal; progress goes to the caller's callback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spark_tui.core.data.errors import DataError
from spark_tui.core.data.templates import Renderer

BATCH = 1000


class RowTokenCounter:
    """Counts tokens of rendered rows; without a tokenizer, estimates (4 characters a token)."""

    def __init__(self, tokenizer: Any, renderer: Renderer | None) -> None:
        self.tokenizer = tokenizer
        self.renderer = renderer
        self.exact = tokenizer is not None
        self._backend = (
            getattr(tokenizer, "backend_tokenizer", None) if tokenizer is not None else None
        )

    def count(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        if self.tokenizer is None:
            return [max(1, len(t) // 4) for t in texts]
        if self._backend is not None:
            # encode_batch_fast skips the character offsets, which counting does not need.
            encode = getattr(self._backend, "encode_batch_fast", self._backend.encode_batch)
            return [len(e) for e in encode(texts, add_special_tokens=False)]
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [len(x) for x in ids]

    def encode(self, text: str) -> list[int]:
        if self.tokenizer is None:
            return list(range(max(1, len(text) // 4)))
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
        assert self.renderer is not None
        return self.renderer.render(messages, add_generation_prompt)

    def texts_of(self, row: dict[str, Any]) -> list[str]:
        """The texts a row is trained on (one, or two for a preference pair)."""
        if "text" in row:
            eos = getattr(self.tokenizer, "eos_token", None) or ""
            return [row["text"] + (eos if isinstance(eos, str) else "")]
        if self.renderer is None:
            return [" ".join(m["content"] for m in conv) for conv in _convs(row)]
        return [self.renderer.render(conv) for conv in _convs(row)]

    def row_lengths(
        self,
        rows: list[dict[str, Any]],
        progress: Callable[[str, float, float | None], None] | None = None,
        errors: dict[int, str] | None = None,
    ) -> list[int]:
        """The longest tokenized conversation of each row.

        A row the chat template refuses gets length -1 and its message in `errors`
        (by row index); without `errors` the DataError is raised.
        """
        out: list[int] = []
        total = len(rows)
        for start in range(0, total, BATCH):
            batch = rows[start : start + BATCH]
            texts: list[str] = []
            owners: list[int] = []
            failed: set[int] = set()
            for j, row in enumerate(batch):
                try:
                    row_texts = self.texts_of(row)
                except DataError as exc:
                    if errors is None:
                        raise
                    errors[start + j] = str(exc)
                    failed.add(j)
                    continue
                for t in row_texts:
                    texts.append(t)
                    owners.append(j)
            lens = [0] * len(batch)
            for j, n in zip(owners, self.count(texts), strict=False):
                if n > lens[j]:
                    lens[j] = n
            for j in failed:
                lens[j] = -1
            out.extend(lens)
            if progress:
                progress("tokenizing", len(out), total)
        return out

    def truncate(self, row: dict[str, Any], max_length: int) -> dict[str, Any] | None:
        """Cut the answer(s) so the row fits; None when even the prompt is too long."""
        if "text" in row:
            ids = self.encode(row["text"])
            keep = max_length - 1
            if keep <= 0:
                return None
            return {"text": self._decode(ids[:keep], row["text"])}
        out = dict(row)
        for key in ("messages", "chosen", "rejected", "completion"):
            if key not in out:
                continue
            for _ in range(4):
                conv = out[key] if key == "messages" else out["prompt"] + out[key]
                (n,) = self.count([self.texts_of({"messages": conv})[0]])
                if n <= max_length:
                    break
                msgs = list(out[key])
                last = msgs[-1]
                if last["role"] != "assistant":
                    return None
                ids = self.encode(last["content"])
                keep = len(ids) - (n - max_length) - 2
                if keep <= 0:
                    return None
                msgs[-1] = {
                    "role": "assistant",
                    "content": self._decode(ids[:keep], last["content"]),
                }
                out[key] = msgs
            else:
                return None
        return out

    def _decode(self, ids: list[int], original: str) -> str:
        if self.tokenizer is None:
            return original[: len(ids) * 4]
        return self.tokenizer.decode(ids, skip_special_tokens=False)


def _convs(row: dict[str, Any]) -> list[list[dict[str, str]]]:
    from spark_tui.core.data.normalize import conversations_of

    return conversations_of(row)
