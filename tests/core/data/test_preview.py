"""Preview: trained / not-trained segments with token counts that add up."""

from __future__ import annotations

from spark_tui.core.data import (
    CHATML_TEMPLATE,
    CHATML_TRAINING_TEMPLATE,
    LLAMA3_TEMPLATE,
    LLAMA3_TRAINING_TEMPLATE,
    preview_example,
    resolve_chat_template,
    training_chat_template,
)
from spark_tui.core.data.templates import Renderer

CONV = [
    {"role": "system", "content": "Be nice."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello there!"},
    {"role": "user", "content": "Bye"},
    {"role": "assistant", "content": "Goodbye."},
]


def test_default_model_preview_marks_assistant_turns(tokenizer):
    (p,) = preview_example({"messages": CONV}, tokenizer)
    trained = [s.text for s in p.segments if s.trained]
    assert trained == ["Hello there!<|im_end|>", "Goodbye.<|im_end|>"]
    assert "".join(s.text for s in p.segments) == p.text
    full = tokenizer.apply_chat_template(CONV, tokenize=False)
    assert p.text == full
    assert p.total_tokens == len(tokenizer(full, add_special_tokens=False)["input_ids"])
    assert 0 < p.trained_tokens < p.total_tokens
    assert p.method == "the template's generation markers"


def test_prefix_method_for_unknown_templates(tokenizer):
    tmpl = "{% for m in messages %}<<{{ m['role'] }}>> {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<<assistant>> {% endif %}"
    (p,) = preview_example({"messages": CONV[1:3]}, tokenizer, tmpl)
    assert p.method == "rendering the prompt before each answer"
    # token-level: the space before "Hello" belongs to the first trained token
    assert [s.text.strip() for s in p.segments if s.trained] == ["Hello there!"]


def test_pair_and_kto_preview(tokenizer):
    row = {
        "prompt": [{"role": "user", "content": "Q?"}],
        "chosen": [{"role": "assistant", "content": "Good."}],
        "rejected": [{"role": "assistant", "content": "Bad."}],
    }
    chosen, rejected = preview_example(row, tokenizer)
    assert chosen.part == "chosen" and rejected.part == "rejected"
    assert [s.text for s in chosen.segments if s.trained] == ["Good.<|im_end|>"]
    (k,) = preview_example(
        {"prompt": row["prompt"], "completion": row["rejected"], "label": False}, tokenizer
    )
    assert k.label is False and [s.text for s in k.segments if s.trained] == ["Bad.<|im_end|>"]


def test_multi_turn_prompt_in_pairs_trains_only_the_answer(tokenizer):
    row = {
        "prompt": CONV[:4],
        "chosen": [{"role": "assistant", "content": "A"}],
        "rejected": [{"role": "assistant", "content": "B"}],
    }
    chosen, _ = preview_example(row, tokenizer)
    assert [s.text for s in chosen.segments if s.trained] == ["A<|im_end|>"]


def test_text_preview_is_all_trained(tokenizer):
    (p,) = preview_example({"text": "Just text."}, tokenizer)
    assert all(s.trained for s in p.segments) and p.text.endswith(tokenizer.eos_token)


def test_preview_without_tokenizer():
    (p,) = preview_example({"messages": CONV[1:3]}, None, CHATML_TEMPLATE)
    assert not p.exact and [s.text for s in p.segments if s.trained] == ["Hello there!<|im_end|>"]


def test_training_twins_render_identically(tokenizer):
    for base, twin in (
        (CHATML_TEMPLATE, CHATML_TRAINING_TEMPLATE),
        (LLAMA3_TEMPLATE, LLAMA3_TRAINING_TEMPLATE),
    ):
        assert training_chat_template(base) == twin
        for agp in (False, True):
            a = Renderer(base, tokenizer).render(CONV, agp)
            b = Renderer(twin, tokenizer).render(CONV, agp)
            assert a == b
    own = training_chat_template(tokenizer)
    assert own is not None and "{% generation %}" in own
    assert Renderer(own, tokenizer).render(CONV) == tokenizer.apply_chat_template(
        CONV, tokenize=False
    )


def test_trl_assistant_masks_with_the_twin(tokenizer):
    """TRL's assistant_only_loss path (return_assistant_tokens_mask) works with the twin."""
    out = tokenizer.apply_chat_template(
        CONV, chat_template=training_chat_template(tokenizer), return_dict=True,
        return_assistant_tokens_mask=True, tokenize=True,
    )  # fmt: skip
    mask = out["assistant_masks"]
    (p,) = preview_example({"messages": CONV}, tokenizer)
    assert sum(mask) == p.trained_tokens


def test_resolve_template():
    class NoTemplate:
        chat_template = None

    c = resolve_chat_template(NoTemplate())
    assert c.name == "chatml" and c.source == "fallback" and "Llama 3" in c.note
    assert resolve_chat_template(NoTemplate(), "llama3").template == LLAMA3_TEMPLATE


def test_fast_renderers_match_jinja(tokenizer):
    from spark_tui.core.data.templates import SMOLLM2_TEMPLATE

    for tmpl in (CHATML_TEMPLATE, LLAMA3_TEMPLATE, SMOLLM2_TEMPLATE, tokenizer.chat_template):
        r = Renderer(tmpl, tokenizer)
        assert r._fast is not None, tmpl[:40]
        for conv in (CONV, CONV[1:], CONV[1:2]):
            for agp in (False, True):
                assert r.render(conv, agp) == r._jinja(conv, agp)


def test_a_template_that_hides_the_answers_says_so_and_the_row_is_not_trained():
    from spark_tui.core.data.labels import sft_labels

    # renders only the user turns: no answer can be found, so nothing would train
    template = (
        "{% for m in messages %}{% if m['role'] == 'user' %}U: {{ m['content'] }}\n"
        "{% endif %}{% endfor %}"
    )
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    (p,) = preview_example(row, None, template)
    assert p.trained_tokens == 0 and "could not be masked" in p.method
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = Tokenizer(models.WordLevel({"[UNK]": 0, "U": 1, ":": 2, "hi": 3}, unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()]
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=words, unk_token="[UNK]")
    assert sft_labels(row, tok, template) is None
