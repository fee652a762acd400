"""The Memory step as text: what `spark-tui memory` prints (the screen shows the same numbers)."""

from __future__ import annotations

from typing import Any

from spark_tui.core.memory.breakdown import Estimate, fmt_gb
from spark_tui.core.memory.fit import Verdict
from spark_tui.core.memory.headroom import STATUS_LABELS


def describe_settings(est: Estimate) -> str:
    """One line: method, objective, length, batch, checkpointing, precision, optimizer."""
    s = est.settings
    parts = [
        s.method,
        s.objective.upper(),
        f"max length {s.max_length}",
        f"micro-batch {s.micro_batch} x {s.grad_accum} accumulation",
        f"gradient checkpointing {'on' if s.gradient_checkpointing else 'off'}",
        s.resolved_precision,
        s.optimizer,
    ]
    if s.peft and s.adapter not in ("prompt_tuning", "prefix_tuning", "ia3"):
        parts.insert(1, f"r={s.lora_r} on {s.target_modules}")
    if s.resolved_reference != "none":
        parts.append(f"reference: {s.resolved_reference.replace('_', ' ')}")
    return " · ".join(parts)


def report_lines(v: Verdict) -> list[str]:
    """The Memory step as text: the CLI prints it; the screen shows the same numbers."""
    e = v.estimate
    a = e.arch
    lines = [
        f"Model:     {e.model} ({e.params_total / 1e9:.2f}B params, {a.num_layers} layers, "
        f"hidden {a.hidden_size}, vocab {a.vocab_size:,})",
        f"Run:       {describe_settings(e)}",
        f"Trainable: {e.params_trainable / 1e6:,.1f}M params "
        f"({100 * e.params_trainable / max(1, e.params_total):.2f} %)",
        "",
    ]
    for label, value in e.rows():
        if label == "Total peak":
            lines.append(f"  {'-' * 30}")
        lines.append(f"  {label:20s} {value:>10s}")
    lines.append("")
    lines.append(v.summary)
    lines.extend(f"  ! {w}" for w in v.warnings)
    lines.extend(f"  - {n}" for n in e.notes)
    if v.suggestions:
        lines.append("")
        lines.append("Suggestions (best first):")
        for n, sg in enumerate(v.suggestions, 1):
            change = ", ".join(f"{k} = {_toml_value(val)}" for k, val in sg.changes.items())
            lines.append(
                f"  {n}. {sg.title}: {fmt_gb(sg.estimate.total)} "
                f"({STATUS_LABELS[sg.status].lower()})  [{change}]"
            )
    return lines


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    return str(v)
