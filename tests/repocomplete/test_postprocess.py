"""Golden cases for each post-processing filter and for the whole pipeline."""

from __future__ import annotations

import pytest

from repocomplete.postprocess import (
    balance_brackets,
    cut_at_stop,
    cut_repetition,
    drop_blank,
    drop_suffix_overlap,
    infer_mode,
    limit_to_line,
    limit_to_scope,
    postprocess,
)


@pytest.mark.parametrize(
    ("prefix", "suffix", "expected"),
    [
        ("def f():\n    ", "", "multiline"),            # empty line after a block opener
        ("def f():\n    \n", "", "line"),               # cursor at column 0 of a blank line, opener two lines up? no: prev non-blank is opener
        ("x = compute(", ")\n", "line"),                # mid-line
        ("if x:\n    y = 1\n    ", "", "line"),          # inside a block, not after an opener
        ("function f() {\n  ", "\n}", "multiline"),
        ("(define (f x)\n  ", ")", "line"),             # text to the right of the cursor
        ("for i in range(3):  # loop\n    ", "", "multiline"),
    ],
)
def test_infer_mode(prefix, suffix, expected):
    if prefix == "def f():\n    \n":
        expected = "multiline"  # the previous non-blank line is still the opener
    assert infer_mode(prefix, suffix) == expected


def test_cut_at_stop_takes_the_earliest():
    assert cut_at_stop("abc<|end|>def<x>", ["<x>", "<|end|>"]) == "abc"
    assert cut_at_stop("abc", []) == "abc"
    assert cut_at_stop("value<|rc:", ["<|rc:end|>"]) == "value"      # a sentinel cut by max_tokens
    assert cut_at_stop("a <", ["<|rc:end|>"]) == "a <"                # too short to tell: code


@pytest.mark.parametrize(
    ("text", "prefix", "expected"),
    [
        ("foo(bar)\nbaz()", "x = ", "foo(bar)"),
        ("\n    return x\n    y", "def f(x):\n    pass\n", "\n    return x"),   # cursor on an empty line
        ("\nnext_line()", "x = 1", ""),                                       # line already complete
        ("only", "", "only"),
    ],
)
def test_limit_to_line(text, prefix, expected):
    assert limit_to_line(text, prefix) == expected


@pytest.mark.parametrize(
    ("text", "prefix", "language", "suffix", "expected"),
    [
        # Python: the body ends where indentation drops.
        ("x = 1\n    return x\n\ndef g():\n    pass", "def f():\n    ", "python", "", "x = 1\n    return x"),
        # Nested blocks inside the completion are kept.
        ("for a in b:\n        c(a)\n    return b\nprint(1)", "def f(b):\n    ", "python", "",
         "for a in b:\n        c(a)\n    return b"),
        # C-family: the closing brace of the enclosing function belongs to the suffix.
        ("return 1;\n}\n\nfunction g() {}", "function f() {\n    ", "javascript", "\n} // f\n", "return 1;"),
        # ...but a brace closing a block the completion opened is kept.
        ("if (x) {\n        y();\n    }\n    return 2;\n}", "function f() {\n    ", "javascript", "\n} // f\n",
         "if (x) {\n        y();\n    }\n    return 2;"),
        # The model began with a newline itself: reference = its first real line.
        ("\n    a = 1\n    b = 2\nc = 3", "def f():", "python", "", "\n    a = 1\n    b = 2"),
    ],
)
def test_limit_to_scope(text, prefix, language, suffix, expected):
    assert limit_to_scope(text, prefix, language, suffix) == expected


@pytest.mark.parametrize(
    ("text", "prefix", "suffix", "expected"),
    [
        ("a, b):", "def f(", "):\n", "a, b"),              # the suffix already closes the call
        ("print(x)", "foo(", ")\n", "print(x)"),           # own brackets are balanced: keep
        ("len(items)]", "x = [", "]\n", "len(items)"),
        ("x) + y", "z = (", "\n", "x) + y"),               # suffix does not close it: keep
        ("a}) more", "f(", ")\n", "a"),                     # a closer matching nothing ends it
        ("s = ')'", "", "", "s = ')'"),                     # brackets in strings are ignored
    ],
)
def test_balance_brackets(text, prefix, suffix, expected):
    assert balance_brackets(text, prefix, suffix) == expected


@pytest.mark.parametrize(
    ("text", "suffix", "expected"),
    [
        ("name = value  # comment", "  # comment\n", "name = value"),
        ("x = 1\nreturn x", "return x\n", "x = 1\n"),   # the line break keeps "x = 1return x" apart
        ("print(x)", ")\n", "print(x)"),                   # closers are not an "overlap"
        # The space before the repeated code is the middle's when the suffix starts with the code
        # (Qwen2.5-Coder-0.5B on HumanEval/53's random span: "return " before "x + y").
        (" return x + y", "x + y\n", " return "),
        (" return  x + y", " x + y\n", " return"),         # the suffix brings its own space
        ("abc", "", "abc"),
    ],
)
def test_drop_suffix_overlap(text, suffix, expected):
    assert drop_suffix_overlap(text, suffix) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("foo()\nfoo()\nfoo()\nfoo()", "foo()\nfoo()"),
        ("a = 1\nb = 2\na = 1\nb = 2\na = 1\nb = 2\na = 1\nb = 2", "a = 1\nb = 2\na = 1\nb = 2"),
        ("    }\n    }\n    }", "    }\n    }\n    }"),    # short closers legitimately repeat
        ("x = [1, 2, 2, 2, 2, 2, 2, 2, 2", "x = [1, 2"),
        ("# ##########################", "# ##########################"),  # banners are not loops
    ],
)
def test_cut_repetition(text, expected):
    assert cut_repetition(text) == expected


def test_drop_blank():
    assert drop_blank("  \n\t ") == ""
    assert drop_blank("x = 1  \n\n") == "x = 1"
    assert drop_blank("x = 1  \n\n", "\nnext") == "x = 1"
    # Code right after the cursor: the separating whitespace is part of the middle.
    assert drop_blank(" return ", "x\n") == " return "
    assert drop_blank("pass\n    ", "return y\n") == "pass\n    "


def test_bridging_to_a_deeper_suffix():
    """The middle must open the block the suffix sits in (HumanEval multi-line infilling)."""
    prefix = "def f(x):\n    while x:\n        "
    suffix = "\n        x -= 1\n    return x\n"
    raw = "y = 1\n    while x > 2:\n        x -= 1\n    return x\n"
    assert limit_to_scope(raw, prefix, "python", suffix) == "y = 1\n    while x > 2:"
    # Without a deeper suffix the dedent ends the block as usual.
    assert limit_to_scope(raw, prefix, "python", "\n    return x\n") == "y = 1"
    # A statement may lead the bridge as long as the last line opens the suffix's block.
    raw = "y = x\n    z = 0\n    while z < 2:\n        x -= 1\n"
    assert limit_to_scope(raw, prefix, "python", suffix) == "y = x\n    z = 0\n    while z < 2:"


def test_a_closer_that_nothing_after_the_cursor_supplies_is_kept():
    """Qwen2.5-Coder-0.5B's body for HumanEval/13 in R (eval lowres): the prompt ends inside
    ``function(a, b) {`` at the end of the file, so the function's ``}`` must come from the
    completion; with code after the cursor (an editor's auto-inserted ``}``) it is still dropped."""
    prefix = "gcd <- function(a, b) {\n"
    raw = "  while (b != 0) {\n    t <- b\n    b <- a %% b\n    a <- t\n  }\n  a\n}\n\ngcd(4, 6)\n"
    body = "  while (b != 0) {\n    t <- b\n    b <- a %% b\n    a <- t\n  }\n  a"
    assert limit_to_scope(raw, prefix, "r", "") == body + "\n}"
    assert postprocess(raw, prefix=prefix, suffix="", mode="multiline", language="r") == body + "\n}"
    assert limit_to_scope(raw, prefix, "r", "\n} # gcd\n") == body
    # The same at the reference level (the model's first line already at the closer's indentation).
    assert limit_to_scope("a\n}\nb", "f <- function(a) {\n", "r", "") == "a\n}"
    # A closer of nothing the prefix opened still ends the completion.
    assert limit_to_scope("  a\n}\n", "x <- 1\n", "r", "") == "  a"


def test_a_dedent_that_never_opens_the_suffix_block_ends_the_completion():
    """Qwen2.5-Coder-0.5B's random-span middle for HumanEval/78 (eval fim): the answer, then test
    code at column 0. The suffix (indented 4) cannot follow ``print(...)``: the dedent left the
    function, so the completion ends where it began."""
    prefix = "def hex_key(num):\n    primes = ("
    suffix = "\n    total = 0\n    for c in num:\n        total += c in primes\n    return total\n"
    raw = (' "2", "3")\n    return sum(1 for c in num if c in primes)\n\n# Test cases\n'
           'print(hex_key("AB"))  # Output: 1\nprint(hex_key("1077E"))\n')
    expected = ' "2", "3")\n    return sum(1 for c in num if c in primes)'
    assert limit_to_scope(raw, prefix, "python", suffix) == expected
    assert postprocess(raw, prefix=prefix, suffix=suffix, mode="multiline", language="python") == expected
    # A dedented line that continues into the suffix through an open bracket is kept.
    raw = "y = 1\n    z = f(\n"
    assert limit_to_scope(raw, "def f(x):\n    if x:\n        ", "python", "\n        x)\n") == raw


def test_a_bridge_never_leaves_the_function_the_cursor_is_in():
    """Qwen2.5-Coder-0.5B's multi-line middle for HumanEval/10 (eval fim): an answer, then
    ``def test_is_palindrome():`` at column 0 with asserts indented like the suffix. A line at the
    enclosing function's ``def`` level ends that function, so it is no bridge to the suffix's block."""
    prefix = ("def is_palindrome(string: str) -> bool:\n    return string == string[::-1]\n\n\n"
              "def make_palindrome(string: str) -> str:\n    \"\"\" Find the shortest palindrome.\n"
              "    >>> make_palindrome('cat')\n    'catac'\n    \"\"\"\n")
    suffix = "\n\n    return string + string[:beginning_of_suffix][::-1]\n"
    answer = "    beginning_of_suffix = 0\n    while not is_palindrome(string[beginning_of_suffix:]):\n        beginning_of_suffix += 1"
    raw = answer + "\n\n\ndef test_is_palindrome():\n    assert is_palindrome('') == True\n    assert is_palindrome('cat')\n"
    assert limit_to_scope(raw, prefix, "python", suffix) == answer
    assert postprocess(raw, prefix=prefix, suffix=suffix, mode="multiline", language="python") == answer
    # In a method the bound is the method's ``def``, not column 0.
    method_prefix = "class A:\n    def f(self, x):\n        if x:\n            "
    raw = "y = 1\n    def test_f(self):\n        assert A().f(1)\n"
    assert limit_to_scope(raw, method_prefix, "python", "\n        return y\n") == "y = 1"
    # A clause inside the function still bridges to a deeper suffix (``else:`` at the if's level).
    raw = "y = 1\n        else:\n            y = 2\n    def g(self):\n        pass\n"
    assert (limit_to_scope(raw, method_prefix, "python", "\n            z = 3\n        return y\n")
            == "y = 1\n        else:\n            y = 2")
    # Leaving a nested helper for the function around it is a bridge (HumanEval/127's canonical middle).
    prefix = "def f(a):\n    def is_prime(n):\n        for i in range(2, n):\n            if n % i == 0:\n                return False\n"
    raw = "        return True\n    if is_prime(a):\n"
    assert limit_to_scope(raw, prefix, "python", "\n        return 1\n    return 0\n") == raw
    # At module level there is no definition to leave: a column-0 opener may still bridge.
    assert limit_to_scope("y = 1\nelse:\n    z = 2", "if x:\n    ", "python", "\n    w = 3\n") == "y = 1\nelse:\n    z = 2"


@pytest.mark.parametrize(
    ("raw", "prefix", "suffix", "mode", "expected"),
    [
        ("items)\n\nprint(total)", "total = sum(", ")\n", "auto", "items"),
        ("x * 2\n    return y", "def f(x):\n    y = ", "\n", "auto", "x * 2"),
        ("if x:\n        return 1\n    return 0\n\ndef g():", "def f(x):\n    ", "\n", "auto",
         "if x:\n        return 1\n    return 0"),
        ("   ", "x = ", "", "auto", ""),
        ("value<|rc:end|><|rc:file|>other.py", "x = ", "", "line", "value"),
    ],
)
def test_pipeline_golden(raw, prefix, suffix, mode, expected):
    assert postprocess(raw, prefix=prefix, suffix=suffix, mode=mode, stop=["<|rc:end|>", "<|rc:file|>"]) == expected
