"""Token-budgeted prompt assembly: budget order, line-boundary truncation, determinism."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.types import Snippet
from repocomplete.fim import get_template
from repocomplete.prompt import assemble_prompt, keep_first_lines, keep_last_lines, visible_window


def words(text: str) -> int:
    """A stand-in tokenizer: one token per whitespace-separated word or sentinel-free char run."""
    return len(text.split())


TEMPLATE = get_template("repocomplete")


def test_keep_last_lines_golden():
    text = "a b\nc d\ne f\ng"
    assert keep_last_lines(text, 3, words) == "e f\ng"
    assert keep_last_lines(text, 100, words) == text
    assert keep_last_lines("one two three four", 2, words) == " three four"  # the cursor line alone is cut by chars
    assert keep_last_lines(text, 0, words) == ""


def test_keep_first_lines_golden():
    text = "a b\nc d\ne f\ng"
    assert keep_first_lines(text, 4, words) == "a b\nc d\n"
    assert keep_first_lines("one two three", 2, words) == "one two "


def test_everything_fits_when_small():
    snippets = [Snippet("lib.py", "def helper(): pass\n", "import")]
    out = assemble_prompt(TEMPLATE, prefix="x = 1\ny = ", suffix="\nprint(y)", snippets=snippets,
                          count_tokens=words, budget_tokens=1000, filepath="m.py", repo_name="r")
    assert out.prefix == "x = 1\ny = " and out.suffix == "\nprint(y)"
    assert out.snippets == snippets
    assert out.text == TEMPLATE.render("x = 1\ny = ", "\nprint(y)", snippets=snippets, filepath="m.py", repo_name="r")
    assert out.prompt_tokens == words(out.text)


def test_spm_order_puts_the_suffix_first_and_the_prefix_right_before_the_middle():
    out = assemble_prompt(TEMPLATE, prefix="x = 1\ny = ", suffix="\nprint(y)", count_tokens=words,
                          budget_tokens=1000, filepath="m.py", order="spm")
    assert out.text == "<|rc:file|>m.py\n<|rc:suffix|>\nprint(y)<|rc:prefix|>x = 1\ny = <|rc:middle|>"
    assert out.text == TEMPLATE.render("x = 1\ny = ", "\nprint(y)", filepath="m.py", order="spm")
    small = assemble_prompt(TEMPLATE, prefix="a b c d e f\n" * 40, suffix="g h\n" * 40, count_tokens=words,
                            budget_tokens=60, order="spm")
    assert small.prompt_tokens <= 60 and small.text.endswith("<|rc:middle|>")


def test_budget_is_respected_and_prefix_keeps_the_cursor_end():
    prefix = "".join(f"line{i} = {i}\n" for i in range(400)) + "result = "
    suffix = "".join(f"after{i}()\n" for i in range(400))
    snippets = [Snippet(f"f{i}.py", "".join(f"def f{i}_{j}(): return {j}\n" for j in range(30)), "bm25") for i in range(10)]
    out = assemble_prompt(TEMPLATE, prefix=prefix, suffix=suffix, snippets=snippets, count_tokens=words, budget_tokens=600)
    assert out.prompt_tokens <= 600
    assert prefix.endswith(out.prefix) and out.prefix.endswith("line399 = 399\nresult = ")
    assert suffix.startswith(out.suffix) and out.suffix.startswith("after0()\n")
    assert out.suffix.endswith("\n")                 # cut on a line boundary
    assert out.prefix.startswith("line")            # cut on a line boundary
    # Order of shares: prefix gets the most, then context, the suffix at most a quarter.
    assert words(out.prefix) >= words(out.suffix)
    assert words(out.suffix) <= 0.25 * 600
    assert out.snippets, "context gets the space the prefix and suffix shares leave"
    # Ranked order kept; only the last packed snippet may be truncated.
    assert [s.filepath for s in out.snippets] == [f"f{i}.py" for i in range(len(out.snippets))]
    for s in out.snippets[:-1]:
        assert s.body == snippets[int(s.filepath[1:-3])].body


def test_unused_context_space_flows_back_to_the_prefix():
    prefix = "".join(f"v{i} = {i}\n" for i in range(300))
    with_ctx = assemble_prompt(TEMPLATE, prefix=prefix, suffix="", snippets=[Snippet("a.py", "x = 1\n" * 50, "bm25")],
                               count_tokens=words, budget_tokens=400)
    without = assemble_prompt(TEMPLATE, prefix=prefix, suffix="", snippets=[], count_tokens=words, budget_tokens=400)
    assert words(without.prefix) > words(with_ctx.prefix)
    assert 400 - 16 * 3 <= without.prompt_tokens <= 400  # at most one alignment step (16 lines) unused


def test_truncated_snippet_keeps_whole_lines_and_updates_end_line():
    body = "".join(f"a{i} b{i} c{i}\n" for i in range(100))
    snippet = Snippet("big.py", body, "jaccard", start_line=10, end_line=109)
    out = assemble_prompt(TEMPLATE, prefix="x", suffix="", snippets=[snippet], count_tokens=words, budget_tokens=80)
    assert len(out.snippets) == 1
    kept = out.snippets[0]
    assert body.startswith(kept.body) and kept.body.endswith("\n")
    assert kept.end_line == 10 + kept.body.count("\n") - 1


def test_real_tokenizer_counts(tmp_path):
    """With a real BPE tokenizer, the prompt's token count never exceeds the budget."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    specials = sorted(TEMPLATE.special_tokens)
    tok.train_from_iterator([open(__file__).read()] * 3, trainers.BpeTrainer(vocab_size=400, special_tokens=specials))

    def count(text: str) -> int:
        return len(tok.encode(text, add_special_tokens=False).ids)

    prefix = open(__file__).read()
    for budget in (64, 200, 513):
        out = assemble_prompt(TEMPLATE, prefix=prefix, suffix=prefix, snippets=[Snippet("t.py", prefix[:3000], "bm25")],
                              count_tokens=count, budget_tokens=budget)
        assert out.prompt_tokens == count(out.text) <= budget
        ids = tok.encode(out.text, add_special_tokens=False).ids
        assert tok.token_to_id("<|rc:middle|>") == ids[-1]  # the sentinel survived as one token


@settings(max_examples=60, deadline=None)
@given(
    prefix=st.text(alphabet="ab \n", max_size=300),
    suffix=st.text(alphabet="cd \n", max_size=300),
    budget=st.integers(20, 200),
)
def test_deterministic_and_within_budget(prefix, suffix, budget):
    snippets = [Snippet("s.py", "e f g\n" * 20, "bm25")]
    first = assemble_prompt(TEMPLATE, prefix=prefix, suffix=suffix, snippets=snippets, count_tokens=words, budget_tokens=budget)
    second = assemble_prompt(TEMPLATE, prefix=prefix, suffix=suffix, snippets=snippets, count_tokens=words, budget_tokens=budget)
    assert first == second
    assert first.prompt_tokens <= budget or words(TEMPLATE.render("", "")) > budget
    assert prefix.endswith(first.prefix) and suffix.startswith(first.suffix)


def test_aligned_prefix_start_moves_in_coarse_steps():
    """Typing at the end keeps the prompt's start fixed until the budget forces a jump."""
    base = "".join(f"x{i} = {i}\n" for i in range(200))
    starts = []
    for typed in range(60):
        prefix = base + "y = " + "a " * typed
        out = assemble_prompt(TEMPLATE, prefix=prefix, suffix="", count_tokens=words, budget_tokens=150)
        assert out.prompt_tokens <= 150
        first = out.prefix.split("\n", 1)[0]
        starts.append(int(first.split(" ")[0][1:]))
    assert all(start % 16 == 0 for start in starts)
    assert len(set(starts)) <= 3, starts   # unaligned, the start would move with every word


def test_keep_last_lines_alignment_golden():
    text = "".join(f"l{i}\n" for i in range(10)) + "cur"
    assert keep_last_lines(text, 4, words) == "l7\nl8\nl9\ncur"
    assert keep_last_lines(text, 4, words, align=4) == "l8\nl9\ncur"
    assert keep_last_lines(text, 11, words, align=4) == "l0\nl1\nl2\nl3\nl4\nl5\nl6\nl7\nl8\nl9\ncur"


def test_visible_window_is_what_the_prompt_shows_at_least():
    """Retrieval is told the prompt's window: every line it calls visible is in the prompt, however
    much context competes for the space, and a long file's far lines are not called visible."""
    prefix = "".join(f"line{i} = {i}\n" for i in range(400)) + "result = "
    suffix = "".join(f"after{i}()\n" for i in range(400))
    snippets = [Snippet(f"f{i}.py", "".join(f"def f{i}_{j}(): return {j}\n" for j in range(30)), "bm25") for i in range(10)]
    for budget in (120, 300, 600, 1000):
        overhead = words(TEMPLATE.render("", ""))
        shown = visible_window(prefix, suffix, count_tokens=words, budget_tokens=budget - overhead)
        seen_prefix, _, seen_suffix = shown.partition("\n" + "after0()")
        for given in (snippets, []):
            out = assemble_prompt(TEMPLATE, prefix=prefix, suffix=suffix, snippets=given, count_tokens=words,
                                  budget_tokens=budget)
            assert out.prefix.endswith(seen_prefix) and out.suffix.startswith("after0()" + seen_suffix)
        assert "line0 = 0" not in shown and "after399()" not in shown
    assert visible_window("a = 1\nb = ", "\nc = 3\n", count_tokens=words, budget_tokens=100) == "a = 1\nb = \n\nc = 3\n"


LONG_PREFIX = "".join(f"line{i} = {i}\n" for i in range(20_000)) + "result = "
LONG_SUFFIX = "\n" + "".join(f"x{i} = after({i})\n" for i in range(20_000))


def _recording_counter(seen: list[int]):
    def counting(text: str) -> int:
        seen.append(len(text))
        return words(text)

    return counting


def test_visible_window_of_a_long_file_reads_only_near_the_cursor():
    """Same answer as measuring the whole file, without tokenizing it all (a long file must not
    slow every completion down)."""
    seen: list[int] = []
    shown = visible_window(LONG_PREFIX, LONG_SUFFIX, count_tokens=_recording_counter(seen), budget_tokens=400)
    whole = keep_last_lines(LONG_PREFIX, 200, words, align=16) + "\n" + keep_first_lines(LONG_SUFFIX, 100, words)
    assert shown == whole
    assert max(seen) <= 200 * 8 + 100                 # never the whole file


def test_assemble_prompt_of_a_long_file_reads_only_near_the_cursor():
    seen: list[int] = []
    out = assemble_prompt(TEMPLATE, prefix=LONG_PREFIX, suffix=LONG_SUFFIX, count_tokens=_recording_counter(seen),
                          budget_tokens=600)
    assert max(seen) <= 600 * 8 + 200
    # the same prompt as from the file's last 2,000 lines (a multiple of the 16-line alignment)
    near = "".join(f"line{i} = {i}\n" for i in range(18_000, 20_000)) + "result = "
    assert out.text == assemble_prompt(TEMPLATE, prefix=near, suffix=LONG_SUFFIX[:20_000], count_tokens=words,
                                       budget_tokens=600).text


def test_shares_split_the_window_and_context_gets_the_rest():
    """The suffix keeps its share of the window after the template's tokens, the prefix at least its
    share, and snippets what is left; a wider prefix share leaves context less."""
    prefix = "".join(f"p{i}\n" for i in range(1200))
    suffix = "".join(f"s{i}\n" for i in range(1200))
    snippets = [Snippet(f"f{i}.py", "".join(f"c{i}_{j}\n" for j in range(15)), "bm25") for i in range(30)]
    overhead = words(TEMPLATE.render("", ""))
    available = 1000 - overhead
    wide = assemble_prompt(TEMPLATE, prefix=prefix, suffix=suffix, snippets=snippets, count_tokens=words,
                           budget_tokens=1000, prefix_share=0.6, suffix_share=0.2, prefix_align_lines=1)
    default = assemble_prompt(TEMPLATE, prefix=prefix, suffix=suffix, snippets=snippets, count_tokens=words,
                              budget_tokens=1000, prefix_align_lines=1)
    # the suffix gets its share exactly; the prefix its share plus what whole snippets left over
    assert words(wide.suffix) == int(available * 0.2) and words(default.suffix) == int(available * 0.25)
    assert int(available * 0.6) <= words(wide.prefix) < int(available * 0.8)
    assert int(available * 0.5) <= words(default.prefix) < int(available * 0.75)
    assert wide.snippets and sum(words(s.body) for s in wide.snippets) < sum(words(s.body) for s in default.snippets)
    assert wide.prompt_tokens <= 1000 and default.prompt_tokens <= 1000
    no_context = assemble_prompt(TEMPLATE, prefix=prefix, suffix=suffix, count_tokens=words, budget_tokens=1000,
                                 prefix_share=1.0, suffix_share=0.0, prefix_align_lines=1)
    assert words(no_context.prefix) == available and no_context.suffix == ""


@pytest.mark.parametrize(("prefix_share", "suffix_share"), [(0.0, 0.2), (0.8, 0.3), (1.2, 0.0), (0.5, -0.1)])
def test_shares_that_leave_no_sense_are_refused(prefix_share, suffix_share):
    with pytest.raises(ValueError, match="prefix_share"):
        assemble_prompt(TEMPLATE, prefix="x", suffix="", count_tokens=words, budget_tokens=100,
                        prefix_share=prefix_share, suffix_share=suffix_share)
