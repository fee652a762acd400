"""How the Dataset step draws a prepared row and the token-length histogram."""

from __future__ import annotations

from rich.text import Text

from spark_tui.core import data as data_core


def render_preview(previews: list[data_core.Preview]) -> Text:
    """Prompt tokens dimmed, trained tokens highlighted, with counts."""
    out = Text()
    for p in previews:
        head = f"── {p.part}: {p.total_tokens} tokens, {p.trained_tokens} trained"
        if p.label is not None:
            head += f" · label {'👍' if p.label else '👎'}"
        out.append(head + " ──\n", style="bold")
        if p.part != "text" and p.trained_tokens == 0:  # the template hides the answers
            out.append(f"⚠ {p.method}\n", style="yellow")
        for seg in p.segments:
            out.append(seg.text, style="bold reverse" if seg.trained else "dim")
        out.append("\n")
    return out


def histogram_series(lengths: list[int], bins: int = 20) -> tuple[list[float], list[float]]:
    if not lengths:
        return [], []
    lo, hi = min(lengths), max(lengths)
    width = max(1, (hi - lo + bins) // bins)
    counts = [0] * bins
    for n in lengths:
        counts[min(bins - 1, (n - lo) // width)] += 1
    return [lo + (i + 0.5) * width for i in range(bins)], [float(c) for c in counts]
