"""Training as the engine serves with token healing: the taken-back token moves into the target."""

from __future__ import annotations

import pytest

from repocomplete.fim import TEMPLATES
from training.finetune.batches import tokenize_samples
from training.finetune.cli import build_parser
from training.finetune.evaluation import after_healed

END = TEMPLATES["repocomplete"].end_tokens[0]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def sample(prompt: str, middle: str) -> dict:
    return {"prompt": prompt, "middle": middle, "kind": "line"}


def pieces(tokenizer, ids) -> list[str]:
    return [tokenizer.decode([i]) for i in ids]


def test_a_prompt_ending_in_indentation_moves_its_last_token_into_the_target(tokenizer):
    prompt, middle = "def f():\n    x = 1\n    ", "return x\n"
    assert pieces(tokenizer, tokenizer(prompt, add_special_tokens=False)["input_ids"])[-1] == "    "
    (healed,) = tokenize_samples([sample(prompt, middle)], tokenizer, END, 256, heal=True)
    (plain,) = tokenize_samples([sample(prompt, middle)], tokenizer, END, 256, heal=False)

    assert healed.healed == "    " and plain.healed == ""
    assert healed.target_start == plain.target_start - 1
    # the same text either way, only the token boundary at the cursor differs
    assert tokenizer.decode(healed.input_ids) == tokenizer.decode(plain.input_ids) == prompt + middle + END
    # healed: the target is tokenized as the model reads a whole line ("   " + " return"), as it is
    # served; plain: "return" without its space, a token sequence serving no longer shows the model
    assert pieces(tokenizer, healed.input_ids[healed.target_start:])[:2] == ["   ", " return"]
    assert " return" not in pieces(tokenizer, plain.input_ids[plain.target_start:])


@pytest.mark.parametrize("prompt", [
    "<|rc:prefix|>def f():\n    <|rc:suffix|>\n<|rc:middle|>",   # PSM: ends in the middle sentinel
    "def f():\n",                                                   # ends in a line break
])
def test_prompts_serving_does_not_heal_are_left_as_they_are(tokenizer, prompt):
    (healed,) = tokenize_samples([sample(prompt, "return 1\n")], tokenizer, END, 256, heal=True)
    (plain,) = tokenize_samples([sample(prompt, "return 1\n")], tokenizer, END, 256, heal=False)
    assert healed.healed == "" and healed.input_ids == plain.input_ids and healed.target_start == plain.target_start


def test_an_over_long_healed_sample_keeps_its_target_and_loses_the_prompts_left(tokenizer):
    prompt = "".join(f"    v{i} = {i}\n" for i in range(200)) + "    "
    (healed,) = tokenize_samples([sample(prompt, "return v1\n")], tokenizer, END, 64, heal=True)
    assert len(healed.input_ids) == 64 and healed.healed == "    "
    assert tokenizer.decode(healed.input_ids[healed.target_start:]) == "    return v1\n" + END


@pytest.mark.parametrize(("text", "healed", "shown"), [
    ("    return x", "    ", "return x"),
    ("return x", "", "return x"),
    ("  return x", "    ", None),          # did not rewrite the taken-back text: serving forbids it
    ("bar()", "foo.ba", None),
    ("foo.bar()", "foo.ba", "r()"),
])
def test_exact_match_sees_what_the_user_would(text, healed, shown):
    assert after_healed(text, healed) == shown


def test_healing_is_the_default_and_can_be_turned_off():
    parser = build_parser()
    assert parser.parse_args(["repo"]).token_healing is True
    assert parser.parse_args(["repo", "--no-token-healing"]).token_healing is False


def test_one_healing_rule_serves_several_calls_with_the_same_result(tokenizer):
    from training.finetune.batches import SampleHealing

    rule = SampleHealing.for_tokenizer(tokenizer)
    prompt = "def f(x):\n    y = x\n    "
    (shared,) = tokenize_samples([sample(prompt, "return y\n")], tokenizer, END, 256, heal=rule)
    (fresh,) = tokenize_samples([sample(prompt, "return y\n")], tokenizer, END, 256, heal=True)
    assert shared == fresh and shared.healed == "    "
