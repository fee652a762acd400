"""Chat: streaming through the run's template, base/tuned switching, stop, GGUF via llama.cpp."""

from __future__ import annotations

import importlib.util
import os

import conftest_eval
import pytest

from spark_tui.core.base import names
from spark_tui.core.evaluate import chat
from spark_tui.core.evaluate.chat_session import ChatError, ChatSettings
from spark_tui.core.evaluate.decoding import stop_strings, stop_token_ids
from spark_tui.core.evaluate.generate import generate_answers
from spark_tui.core.evaluate.models import resolve_template

# Session fixtures shared with the other evaluate-area tests.
eval_root = conftest_eval.eval_root
sft_run = conftest_eval.sft_run


def test_stop_tokens_of_the_default_model(default_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(default_model_dir)
    template, _ = resolve_template(tok)
    ids = stop_token_ids(tok, template)
    assert tok.convert_tokens_to_ids("<|im_end|>") in ids
    assert tok.eos_token_id in ids
    assert "<|im_end|>" in stop_strings(tok, template)


def test_settings_are_validated():
    with pytest.raises(ChatError, match="temperature"):
        ChatSettings(temperature=-1).validate()
    with pytest.raises(ChatError, match="top_p"):
        ChatSettings(top_p=0).validate()


@pytest.fixture(scope="module")
def session(sft_run):
    s = chat.open_chat(
        sft_run,
        source="tuned",
        settings=ChatSettings(temperature=0.0, max_new_tokens=8),
        device="cpu",
    )
    yield s
    s.close()


def test_streams_a_greedy_answer_like_generate(session, capfd):
    """The streamed greedy answer is the same text as a direct greedy generate."""
    session.reset()
    session.set_source("tuned")
    capfd.readouterr()
    chunks = list(session.send("What is QLoRA?"))
    assert capfd.readouterr() == ("", ""), "chat must print nothing"
    assert chunks, "no chunks streamed"
    answer = "".join(chunks).strip()
    assert answer
    models = session.backend.models
    direct = generate_answers(
        models, [[{"role": "user", "content": "What is QLoRA?"}]], side="tuned", max_new_tokens=8
    )[0]
    assert answer == direct
    assert session.messages == [
        {"role": "user", "content": "What is QLoRA?"},
        {"role": "assistant", "content": answer},
    ]


def test_multi_turn_and_system_prompt_and_base(session):
    session.reset()
    session.settings.system_prompt = "You are terse."
    session.set_source("base")
    assert session.source == "base"
    first = session.reply("Hi!")
    second = session.reply("What did I just say?")
    assert len(session.messages) == 4 and session.messages[2]["content"] == "What did I just say?"
    assert session.conversation()[0] == {"role": "system", "content": "You are terse."}
    assert isinstance(first, str) and isinstance(second, str)
    # The rendered prompt carries the whole history through the run's chat template.
    ids = session.backend.prompt_ids(session.conversation(), session.settings, 2048)
    text = session.backend.models.tokenizer.decode(ids)
    assert text.startswith("<|im_start|>system\nYou are terse.<|im_end|>")
    assert "Hi!" in text and text.endswith("<|im_start|>assistant\n")
    session.undo()
    assert len(session.messages) == 2
    session.settings.system_prompt = ""
    with pytest.raises(ChatError, match="empty"):
        list(session.send("   "))


def test_stop_ends_the_answer_early(session):
    session.reset()
    session.set_source("tuned")
    session.settings.max_new_tokens = 64
    got = []
    for chunk in session.send("Tell me a long story about LoRA."):
        got.append(chunk)
        session.stop()
    session.settings.max_new_tokens = 8
    n_tokens = len(session.backend.models.tokenizer("".join(got))["input_ids"])
    assert n_tokens < 64
    assert session.messages[-1]["role"] == "assistant"


@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python missing"
)
def test_gguf_chat_with_the_bundled_file(tmp_path):
    from spark_tui.config import RunConfig
    from spark_tui.core.model.resolve import bundled_gguf_path
    from spark_tui.core.train.runs import create_run

    run = create_run(RunConfig(name="gguf-chat"), root=tmp_path)
    (run.path / names.GGUF_DIR).mkdir()
    os.symlink(bundled_gguf_path(), run.path / names.GGUF_DIR / "model-q4_1.gguf")
    with chat.open_chat(
        run, source="gguf", settings=ChatSettings(temperature=0.0, max_new_tokens=8)
    ) as s:
        assert s.source == "gguf:model-q4_1.gguf"
        chunks = list(s.send("What is the capital of France?"))
        assert "".join(chunks).strip()
        assert "<|im_end|>" not in "".join(chunks)
        assert not s.can_switch
    with pytest.raises(ChatError, match="no GGUF"):
        chat.find_gguf(run, "missing.gguf")


def test_cli_chat_repl(sft_run, capsys, monkeypatch):
    import io

    from spark_tui.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO("What is LoRA?\n/base\nHi\n/exit\nnever sent\n"))
    code = main(["chat", str(sft_run.path), "--temperature", "0", "--max-new-tokens", "4"])
    assert code == 0
    out = capsys.readouterr().out
    assert "(now chatting with base)" in out
    assert len([x for x in out.splitlines() if x.strip()]) >= 3
