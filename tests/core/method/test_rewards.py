"""The reward functions GRPO / RLOO runs are given (core/method/rewards.py)."""

from __future__ import annotations

import pytest

from spark_tui.core.method.rewards import (
    RewardError,
    exact_match,
    extract_answer,
    format_check,
    length_target,
    numeric_match,
    reward_functions,
    user_reward,
)


def test_answers_are_read_from_tags_or_the_last_line():
    assert extract_answer("I think... <answer> Paris </answer>") == "Paris"
    assert extract_answer("<answer>1</answer> no, <answer>2</answer>") == "2"
    assert extract_answer("Let me see.\nThe answer is 12") == "The answer is 12"
    assert extract_answer("") == ""


def test_exact_and_numeric_match_against_the_reference():
    done = ["<answer>paris.</answer>", "<answer>Lyon</answer>", "Paris"]
    assert exact_match(done, answer=["Paris"] * 3) == [1.0, 0.0, 1.0]
    chat = [[{"role": "assistant", "content": "<answer>12</answer>"}]]  # conversational
    assert exact_match(chat, answer=["12"]) == [1.0]
    nums = ["<answer>1,000</answer>", "it is 12.0", "<answer>twelve</answer>", "-3"]
    assert numeric_match(nums, answer=["1000", "12", "12", "-3"]) == [1.0, 1.0, 0.0, 1.0]
    with pytest.raises(RewardError, match="'answer' column"):
        exact_match(["x"])


def test_format_and_length_rewards():
    fmt = format_check()
    assert fmt.__name__ == "format"  # TRL logs rewards/format/mean
    assert fmt(["<answer>4</answer>", "4", "<answer> </answer>"]) == [1.0, 0.0, 0.0]
    assert format_check(r"^yes\b")(["yes it is", "no"]) == [1.0, 0.0]
    with pytest.raises(RewardError, match="not a regex"):
        format_check("(")
    length = length_target(10)
    assert length(["x" * 10, "x" * 15, "x" * 30, ""]) == [1.0, 0.5, 0.0, 0.0]


def test_a_user_reward_file_runs_only_when_trusted(tmp_path):
    path = tmp_path / "my_reward.py"
    path.write_text(
        "RAN = True\n"
        "def shout(prompts, completions, **kwargs):\n"
        "    return [float(c.isupper()) for c in completions]\n"
        "def broken(prompts, completions, **kwargs):\n"
        "    return [1.0]\n"
    )
    with pytest.raises(RewardError, match="trust_user_code"):
        user_reward(path, "shout", trust=False)
    func = user_reward(path, "shout", trust=True)
    assert func.__name__ == "shout"
    assert func(prompts=["a", "b"], completions=["YES", "no"]) == [1.0, 0.0]
    with pytest.raises(RewardError, match="returned 1 values for 2"):
        user_reward(path, "broken", trust=True)(prompts=["a", "b"], completions=["x", "y"])
    with pytest.raises(RewardError, match="has no function nope"):
        user_reward(path, "nope", trust=True)
    # Through the one entry point the trainer uses: refused, then used.
    with pytest.raises(RewardError, match="trust_user_code"):
        reward_functions(["format", "user"], user_file=str(path), user_function="shout")
    funcs = reward_functions(
        ["exact_match", "user"], user_file=str(path), user_function="shout", trust_user_code=True
    )
    assert [f.__name__ for f in funcs] == ["exact_match", "shout"]
    with pytest.raises(RewardError, match="unknown reward 'bleu'"):
        reward_functions(["bleu"])
