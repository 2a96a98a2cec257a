"""Golden renders of every FIM template, detection, compatibility and sentinel hygiene."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.types import Snippet
from repocomplete.errors import TemplateMismatchError
from repocomplete.fim import TEMPLATES, SuffixParamTemplate, check_compatible, comment_prefix_for, detect_template, get_template
from repocomplete.postprocess import postprocess

SNIPPETS = [Snippet(filepath="pkg/util.py", body="def helper(x):\n    return x * 2\n", source="import")]
PREFIX, SUFFIX = "def main():\n    y = ", "\n    return y\n"

GOLDEN = {
    "repocomplete": "<|rc:repo|>proj\n<|rc:file|>pkg/util.py\ndef helper(x):\n    return x * 2\n"
    "<|rc:file|>pkg/main.py\n<|rc:prefix|>def main():\n    y = <|rc:suffix|>\n    return y\n<|rc:middle|>",
    "qwen": "<|repo_name|>proj\n<|file_sep|>pkg/util.py\ndef helper(x):\n    return x * 2\n"
    "<|file_sep|>pkg/main.py\n<|fim_prefix|>def main():\n    y = <|fim_suffix|>\n    return y\n<|fim_middle|>",
    "starcoder": "<repo_name>proj<file_sep>pkg/util.py\ndef helper(x):\n    return x * 2\n"
    "<file_sep><fim_prefix>pkg/main.py\ndef main():\n    y = <fim_suffix>\n    return y\n<fim_middle>",
    "starcoder1": "<fim_prefix># Path: pkg/util.py\n# def helper(x):\n#     return x * 2\n"
    "def main():\n    y = <fim_suffix>\n    return y\n<fim_middle>",
    "santacoder": "<fim-prefix># Path: pkg/util.py\n# def helper(x):\n#     return x * 2\n"
    "def main():\n    y = <fim-suffix>\n    return y\n<fim-middle>",
    "deepseek": "<\uff5cfim\u2581begin\uff5c># Path: pkg/util.py\n# def helper(x):\n#     return x * 2\n"
    "def main():\n    y = <\uff5cfim\u2581hole\uff5c>\n    return y\n<\uff5cfim\u2581end\uff5c>",
    "codellama": "<PRE> # Path: pkg/util.py\n# def helper(x):\n#     return x * 2\n"
    "def main():\n    y =  <SUF>\n    return y\n <MID>",
    "codestral": "[SUFFIX]\n    return y\n[PREFIX]# Path: pkg/util.py\n# def helper(x):\n#     return x * 2\n"
    "def main():\n    y = ",
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_render_golden(name):
    template = get_template(name)
    assert template.render(PREFIX, SUFFIX, snippets=SNIPPETS, filepath="pkg/main.py", repo_name="proj") == GOLDEN[name]


def test_every_template_has_a_golden_case():
    assert set(GOLDEN) == set(TEMPLATES)


def test_plain_fim_without_context():
    assert get_template("starcoder1").render("a", "b") == "<fim_prefix>a<fim_suffix>b<fim_middle>"
    assert get_template("repocomplete").render("a", "b") == "<|rc:prefix|>a<|rc:suffix|>b<|rc:middle|>"
    assert get_template("codellama").render("a", "b") == "<PRE> a <SUF>b <MID>"


def test_spm_orders():
    rc = get_template("repocomplete")
    assert rc.render("P", "S", filepath="f.py", order="spm") == "<|rc:file|>f.py\n<|rc:suffix|>S<|rc:prefix|>P<|rc:middle|>"
    sc = get_template("starcoder1")
    assert sc.render("P", "S", order="spm") == "<fim_prefix><fim_suffix>S<fim_middle>P"


def test_context_comment_syntax_follows_the_language():
    assert comment_prefix_for("a/b.rkt") == ";"
    assert comment_prefix_for("x.go") == "//"
    assert comment_prefix_for("x.R") == "#"
    ctx = get_template("deepseek").render_context(SNIPPETS, "main.rs")
    assert ctx.startswith("// Path: pkg/util.py\n// def helper(x):")


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        ({"<|rc:prefix|>", "<|rc:suffix|>", "<|rc:middle|>", "<|rc:end|>"}, "repocomplete"),
        ({"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|repo_name|>", "<|file_sep|>"}, "qwen"),
        ({"<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>", "<|endoftext|>"}, "starcoder"),
        ({"<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<|endoftext|>"}, "starcoder1"),
        ({"<fim-prefix>", "<fim-suffix>", "<fim-middle>"}, "santacoder"),
        ({"<\uff5cfim\u2581begin\uff5c>", "<\uff5cfim\u2581hole\uff5c>", "<\uff5cfim\u2581end\uff5c>"}, "deepseek"),
        ({"\u2581<PRE>", "\u2581<SUF>", "\u2581<MID>", "\u2581<EOT>"}, "codellama"),
        ({"[PREFIX]", "[SUFFIX]", "</s>"}, "codestral"),
    ],
)
def test_detect_template(tokens, expected):
    assert detect_template(tokens).name == expected


def test_detect_without_fim_tokens_is_a_clear_error():
    with pytest.raises(TemplateMismatchError, match="no fill-in-the-middle tokens"):
        detect_template({"<s>", "</s>"})


def test_forcing_a_template_on_a_model_without_its_tokens():
    with pytest.raises(TemplateMismatchError, match="needs tokens the model lacks: <fim_middle>"):
        check_compatible(get_template("starcoder1"), {"<fim_prefix>", "<fim_suffix>"})
    check_compatible(get_template("starcoder1"), {"<fim_prefix>", "<fim_suffix>", "<fim_middle>"})


def test_unknown_template_name_lists_choices():
    with pytest.raises(TemplateMismatchError, match="choose from: repocomplete"):
        get_template("gpt5")
    assert get_template("Qwen2.5-Coder").name == "qwen"
    assert get_template("default").name == "repocomplete"


def test_literal_sentinels_in_user_text_are_neutralised():
    template = get_template("repocomplete")
    prompt = template.render('TOKEN = "<|rc:end|>"\n', "", filepath="fim.py")
    # Exactly one real end-free prompt: the literal can no longer be read as a sentinel.
    assert "<|rc:end|>" not in prompt
    assert "< |rc:end|>" in prompt


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_stop_strings_cover_every_sentinel(name):
    template = TEMPLATES[name]
    assert set(template.stop) == template.special_tokens
    for token in template.special_tokens:
        raw = f"value{token}garbage"
        assert postprocess(raw, prefix="x = ", suffix="", stop=template.stop) == "value"


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(sorted(TEMPLATES)),
    pieces=st.lists(st.one_of(st.text(max_size=12), st.integers(0, 20)), max_size=12),
)
def test_no_sentinel_ever_survives_postprocessing(name, pieces):
    template = TEMPLATES[name]
    sentinels = sorted(template.special_tokens)
    raw = "".join(p if isinstance(p, str) else sentinels[p % len(sentinels)] for p in pieces)
    out = postprocess(raw, prefix="def f():\n    ", suffix="\n", mode="multiline", stop=template.stop)
    for token in template.special_tokens:
        assert token not in out


@pytest.mark.parametrize("name", [n for n, t in TEMPLATES.items() if t.vocabulary])
def test_a_family_tokenizer_carries_every_sentinel_end_token_first(name):
    template = TEMPLATES[name]
    tokens = template.tokenizer_tokens
    assert tokens[0] in template.end_tokens and template.special_tokens <= set(tokens)
    assert len(set(tokens)) == len(tokens)


def test_the_registry_matches_the_embedded_default_models_tokenizer():
    """The pretraining tokenizer's ids come from the registry: ids 0..6 of the shipped model."""
    import json

    from repocomplete.model_resolution import DEFAULT_MODEL_DIR

    added = json.loads((DEFAULT_MODEL_DIR / "tokenizer.json").read_text())["added_tokens"]
    shipped = tuple(t["content"] for t in sorted(added, key=lambda t: t["id"]))
    assert shipped == TEMPLATES["repocomplete"].tokenizer_tokens


def test_suffix_param_template_renders_context_as_comments_and_leaves_the_suffix_out():
    rendered = SuffixParamTemplate().render("x = ", "\nprint(x)", snippets=[Snippet(filepath="a.py", body="A = 1", source="client")],
                                            filepath="b.py")
    assert rendered == "# Path: a.py\n# A = 1\nx = "
