"""Chat templates: the model's own, else ChatML or Llama 3.

Training and deployment must use the same template, so the two fallbacks are
exported as constants (`CHATML_TEMPLATE`, `LLAMA3_TEMPLATE`) that the deploy
step reuses.  Each has a *training twin* with ``{% generation %}`` markers that
renders the identical text; TRL's ``assistant_only_loss=True`` needs those
markers to mask everything but the assistant turns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from spark_tui.core.data.errors import DataError

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

CHATML_TRAINING_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

LLAMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)

LLAMA3_TRAINING_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% generation %}{{ message['content'] | trim + '<|eot_id|>' }}{% endgeneration %}"
    "{% else %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)

# SmolLM2-Instruct (the bundled default model) ships ChatML with a default system prompt.
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

SMOLLM2_TRAINING_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\\n' }}{% endif %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{% else %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

TEMPLATES = {"chatml": CHATML_TEMPLATE, "llama3": LLAMA3_TEMPLATE}


def _key(template: str) -> str:
    """Templates compare equal whether a newline in a Jinja string is written \\n or literally."""
    return template.replace("\\n", "\n").strip()


_TRAINING_TWINS = {
    _key(CHATML_TEMPLATE): CHATML_TRAINING_TEMPLATE,
    _key(LLAMA3_TEMPLATE): LLAMA3_TRAINING_TEMPLATE,
    _key(SMOLLM2_TEMPLATE): SMOLLM2_TRAINING_TEMPLATE,
}
_GENERATION_RE = re.compile(r"\{%-?\s*generation\s*-?%\}")


@dataclass
class TemplateChoice:
    """The chat template a run uses, where it came from, and a note for the user."""

    name: str  # "model", "chatml" or "llama3"
    template: str
    source: str  # "tokenizer", "chosen" or "fallback"
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "note": self.note}


def has_generation_markers(template: str | None) -> bool:
    return bool(template and _GENERATION_RE.search(template))


def resolve_chat_template(tokenizer: Any, choice: str = "auto") -> TemplateChoice:
    """Pick the template: the tokenizer's own for "auto", else ChatML / Llama 3.

    A tokenizer without a template gets ChatML under "auto", with a note saying so
    (Llama 3 is the other offer).
    """
    if choice not in ("auto", "chatml", "llama3"):
        raise DataError(f"unknown chat template {choice!r}; use auto, chatml or llama3")
    own = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
    if isinstance(own, dict):  # several named templates: use the default one
        own = own.get("default") or next(iter(own.values()), None)
    if choice == "auto":
        if own:
            return TemplateChoice("model", own, "tokenizer", "the model's own chat template")
        note = (
            "the tokenizer has no chat template; using ChatML "
            "(choose Llama 3 instead if the model was trained with it)"
            if tokenizer is not None
            else "no tokenizer given: rendering with ChatML"
        )
        return TemplateChoice("chatml", CHATML_TEMPLATE, "fallback", note)
    template = TEMPLATES[choice]
    note = f"{'ChatML' if choice == 'chatml' else 'Llama 3'} chosen in the run config"
    if tokenizer is not None:
        marker = "<|im_start|>" if choice == "chatml" else "<|start_header_id|>"
        vocab = _added_tokens(tokenizer)
        if vocab is not None and marker not in vocab:
            note += f"; the tokenizer has no {marker} token, so it is split into pieces"
    return TemplateChoice(choice, template, "chosen", note)


def apply_template_to_tokenizer(tokenizer: Any, choice: TemplateChoice) -> None:
    """Set the chosen template on the tokenizer so TRL renders exactly what the preview shows."""
    if tokenizer is not None and getattr(tokenizer, "chat_template", None) != choice.template:
        tokenizer.chat_template = choice.template


def training_chat_template(template_or_tokenizer: Any) -> str | None:
    """A twin of the template with ``{% generation %}`` markers (for assistant-only loss).

    Returns the template itself when it already has markers, the twin for the
    templates this module knows, TRL's patched template when TRL knows the model,
    and None otherwise (then train on prompt/completion or on the whole text).
    """
    tokenizer = None
    template = template_or_tokenizer
    if not isinstance(template_or_tokenizer, str):
        tokenizer = template_or_tokenizer
        template = getattr(tokenizer, "chat_template", None)
    if not template:
        return None
    if has_generation_markers(template):
        return template
    if _key(template) in _TRAINING_TWINS:
        return _TRAINING_TWINS[_key(template)]
    if tokenizer is not None:
        try:
            from trl.chat_template_utils import get_training_chat_template

            patched = get_training_chat_template(tokenizer)
        except Exception:  # noqa: BLE001 - TRL does not know this template
            return None
        return patched or (template if has_generation_markers(template) else None)
    return None


def _added_tokens(tokenizer: Any) -> set[str] | None:
    try:
        return set(tokenizer.get_vocab())
    except Exception:  # noqa: BLE001
        return None


def special_tokens(tokenizer: Any) -> dict[str, str]:
    """The special-token strings a template may reference (missing ones are empty)."""
    out = {}
    for name in ("bos_token", "eos_token", "pad_token", "unk_token"):
        value = getattr(tokenizer, name, None) if tokenizer is not None else None
        out[name] = value if isinstance(value, str) else ""
    return out


class Renderer:
    """Renders conversations through one template, compiled once (the hot path).

    For the templates this module knows (ChatML, SmolLM2's ChatML, Llama 3) a
    plain-Python renderer does the same work several times faster than Jinja;
    it is checked against Jinja on a probe conversation and only used if both
    agree exactly.
    """

    def __init__(self, template: str, tokenizer: Any = None) -> None:
        self.template = template
        self.kwargs = special_tokens(tokenizer)
        try:
            from transformers.utils.chat_template_utils import _compile_jinja_template

            self._compiled = _compile_jinja_template(template)
        except Exception as exc:  # noqa: BLE001 - a broken template is the user's to fix
            raise DataError(f"the chat template does not compile: {exc}") from exc
        self._fast = _fast_renderer(template, self.kwargs)
        if self._fast is not None:
            for agp in (False, True):
                for probe in (_PROBE, _PROBE[1:], []):
                    if self._fast(probe, agp) != self._jinja(probe, agp):
                        self._fast = None
                        break

    @staticmethod
    def tokens_of(tokenizer: Any) -> dict[str, str]:
        return special_tokens(tokenizer)

    def _jinja(self, messages: list[dict[str, Any]], add_generation_prompt: bool) -> str:
        return self._compiled.render(
            messages=messages, add_generation_prompt=add_generation_prompt, **self.kwargs
        )

    def render(self, messages: list[dict[str, Any]], add_generation_prompt: bool = False) -> str:
        if self._fast is not None:
            return self._fast(messages, add_generation_prompt)
        try:
            return self._jinja(messages, add_generation_prompt)
        except Exception as exc:  # noqa: BLE001 - templates raise their own errors
            raise DataError(f"the chat template failed on a row: {exc}") from exc

    def render_with_generation(
        self, messages: list[dict[str, Any]]
    ) -> tuple[str, list[tuple[int, int]]]:
        """Text plus the character spans the template marks as generation."""
        from transformers.utils.chat_template_utils import _render_with_assistant_indices

        try:
            return _render_with_assistant_indices(
                self._compiled, messages, None, None, False, **self.kwargs
            )
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"the chat template failed on a row: {exc}") from exc


_PROBE = [
    {"role": "system", "content": " System text \n"},
    {"role": "user", "content": "Hi {{ not jinja }} <|im_end|>"},
    {"role": "assistant", "content": "\tHello!\n\n"},
    {"role": "tool", "content": "{}"},
    {"role": "assistant", "content": ""},
]
_SMOL_SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"


def _fast_renderer(template: str, kw: dict[str, str]) -> Any:
    key = _key(template)
    if key in (_key(CHATML_TEMPLATE), _key(CHATML_TRAINING_TEMPLATE)):

        def chatml(messages: list[dict[str, Any]], agp: bool) -> str:
            text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
            return text + "<|im_start|>assistant\n" if agp else text

        return chatml
    if key in (_key(SMOLLM2_TEMPLATE), _key(SMOLLM2_TRAINING_TEMPLATE)):

        def smollm2(messages: list[dict[str, Any]], agp: bool) -> str:
            text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
            if messages and messages[0]["role"] != "system":
                text = _SMOL_SYSTEM + text
            return text + "<|im_start|>assistant\n" if agp else text

        return smollm2
    if key in (_key(LLAMA3_TEMPLATE), _key(LLAMA3_TRAINING_TEMPLATE)):
        bos = kw.get("bos_token", "")

        def llama3(messages: list[dict[str, Any]], agp: bool) -> str:
            text = bos + "".join(
                f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content'].strip()}<|eot_id|>"
                for m in messages
            )
            return text + "<|start_header_id|>assistant<|end_header_id|>\n\n" if agp else text

        return llama3
    return None
