"""Token-budgeted prompt assembly.

The model's window is shared by three things, in order of importance: the prefix (what
the user just typed is the strongest signal), a share of the suffix (so the middle fits
what follows), then repository context. Everything is measured with the model's own
tokenizer and cut on line boundaries, so no identifier or sentinel is ever split, and
the result is a pure function of its inputs (the KV cache reuses identical prefixes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from indexer.types import Snippet
from repocomplete.fim import FimOrder, FimTemplate

TokenCounter = Callable[[str], int]

#: A snippet is only worth including if at least this many tokens of it fit.
MIN_SNIPPET_TOKENS = 12
#: Default shares of the window (after the template's tokens) for the prefix and the suffix,
#: and the line multiple a cut prefix starts at: one set for the prompt and what it shows.
PREFIX_SHARE, SUFFIX_SHARE, PREFIX_ALIGN_LINES = 0.5, 0.25, 16


def check_shares(prefix_share: float, suffix_share: float) -> None:
    """ValueError unless the prefix's and suffix's shares of a prompt are fractions that leave
    context a non-negative rest (the prefix's above zero: the cursor's own line always counts)."""
    if not (0 < prefix_share <= 1 and 0 <= suffix_share <= 1 and prefix_share + suffix_share <= 1):
        raise ValueError(f"prefix_share ({prefix_share}) must be in (0, 1], suffix_share ({suffix_share}) in [0, 1], "
                         "and their sum at most 1 (retrieved context gets the rest)")


@dataclass
class AssembledPrompt:
    """The prompt and what went into it."""

    text: str
    prompt_tokens: int
    #: Snippets packed into the prompt (possibly truncated), in prompt order.
    snippets: list[Snippet] = field(default_factory=list)
    #: The parts of prefix and suffix that were kept.
    prefix: str = ""
    suffix: str = ""


def keep_last_lines(text: str, budget: int, count: TokenCounter, align: int = 1) -> str:
    """The longest tail of ``text`` made of whole lines within ``budget`` tokens.

    The cursor's own line (the text after the last newline) is always kept; if even it
    alone is over budget, its leading characters are dropped. With ``align`` > 1 the first
    kept line is a multiple of ``align`` (counted from the start of ``text``), so that while
    the user types the prompt's start moves in coarse steps and the backend's KV cache of
    the unchanged prompt start stays valid for many keystrokes.
    """
    if budget <= 0:
        return ""
    if count(text) <= budget:
        return text
    head, sep, current = text.rpartition("\n")
    if count(current) > budget:
        return _fit_chars(current, budget, count, keep="end")
    lines = head.split("\n") if sep else []
    # Binary search on how many trailing lines fit: O(log n) tokenizer calls.
    lo, hi = 0, len(lines)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        candidate = "\n".join(lines[len(lines) - mid:]) + "\n" + current
        if count(candidate) <= budget:
            lo = mid
        else:
            hi = mid - 1
    start = len(lines) - lo
    if align > 1:
        start = -(-start // align) * align
    if start >= len(lines):
        return current
    return "\n".join(lines[start:]) + "\n" + current


def keep_first_lines(text: str, budget: int, count: TokenCounter) -> str:
    """The longest head of ``text`` made of whole lines within ``budget`` tokens.

    The rest of the cursor's line (up to the first newline) is kept whole when it fits,
    otherwise cut by characters.
    """
    if budget <= 0:
        return ""
    if count(text) <= budget:
        return text
    lines = text.split("\n")
    if count(lines[0]) > budget:
        return _fit_chars(lines[0], budget, count, keep="start")
    lo, hi = 1, len(lines)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count("\n".join(lines[:mid]) + "\n") <= budget:
            lo = mid
        else:
            hi = mid - 1
    return "\n".join(lines[:lo]) + "\n"


def _fit_chars(line: str, budget: int, count: TokenCounter, keep: str) -> str:
    lo, hi = 0, len(line)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        piece = line[len(line) - mid:] if keep == "end" else line[:mid]
        if count(piece) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return line[len(line) - lo:] if keep == "end" else line[:lo]


def _truncate_snippet(snippet: Snippet, budget: int, count: TokenCounter) -> Snippet | None:
    body = keep_first_lines(snippet.body, budget, count)
    if not body.strip() or count(body) < min(MIN_SNIPPET_TOKENS, budget):
        return None
    kept_lines = body.count("\n") + (0 if body.endswith("\n") else 1)
    end_line = snippet.start_line + kept_lines - 1 if snippet.start_line else snippet.end_line
    return Snippet(
        filepath=snippet.filepath, body=body, source=snippet.source, score=snippet.score,
        start_line=snippet.start_line, end_line=end_line, kind=snippet.kind, symbol=snippet.symbol,
    )


#: More characters than one token of code ever spans, in practice: :func:`visible_window` looks
#: no further than ``budget * MAX_CHARS_PER_TOKEN`` characters from the cursor (saying less is
#: visible than is only costs a repeated line; tokenizing a whole long file costs milliseconds).
MAX_CHARS_PER_TOKEN = 8


def near_cursor_prefix(prefix: str, max_chars: int, align: int = 1) -> str:
    """The last whole lines of ``prefix`` within ``max_chars`` (the cursor's line always), the
    first kept line a multiple of ``align`` from the start, so :func:`keep_last_lines` cuts
    the result at the same lines as the whole prefix."""
    if len(prefix) <= max_chars:
        return prefix
    lines = prefix.split("\n")
    start, chars = len(lines) - 1, len(lines[-1])
    while start > 0 and chars + len(lines[start - 1]) + 1 <= max_chars:
        start -= 1
        chars += len(lines[start]) + 1
    start = -(-start // align) * align if start < len(lines) - 1 else start
    return "\n".join(lines[min(start, len(lines) - 1):])


def near_cursor_suffix(suffix: str, max_chars: int) -> str:
    """The first whole lines of ``suffix`` within ``max_chars`` (the cursor line's rest always)."""
    if len(suffix) <= max_chars:
        return suffix
    cut = suffix.rfind("\n", 0, max_chars)
    return suffix[: cut + 1] if cut >= 0 else suffix[: suffix.find("\n") + 1 or len(suffix)]


def visible_window(prefix: str, suffix: str, *, count_tokens: TokenCounter, budget_tokens: int,
                   prefix_share: float = PREFIX_SHARE, suffix_share: float = SUFFIX_SHARE,
                   prefix_align_lines: int = PREFIX_ALIGN_LINES) -> str:
    """The prefix and suffix text a prompt of ``budget_tokens`` shows at least (the shares
    :func:`assemble_prompt` guarantees them, its prefix cut at the same aligned line), joined
    by a newline. ``budget_tokens`` is the space left after the template's own tokens.

    Retrieval drops snippets whose lines are already visible; telling it what the window
    really holds (not the whole file) lets it bring back the file's own lines that scrolled
    out of a small model's window, the in-file repeats a completion can copy.
    """
    prefix_budget, suffix_budget = int(budget_tokens * prefix_share), int(budget_tokens * suffix_share)
    near_prefix = near_cursor_prefix(prefix, prefix_budget * MAX_CHARS_PER_TOKEN, prefix_align_lines)
    kept_prefix = keep_last_lines(near_prefix, prefix_budget, count_tokens, align=prefix_align_lines)
    kept_suffix = keep_first_lines(near_cursor_suffix(suffix, suffix_budget * MAX_CHARS_PER_TOKEN), suffix_budget,
                                   count_tokens)
    return kept_prefix + "\n" + kept_suffix


#: Tokens of the window not promised to retrieval as visible: tokens can merge differently where
#: the prompt's pieces join, and the prompt is shaved to fit (see ``assemble_prompt``).
VISIBLE_SLACK_TOKENS = 8


def window_text(template: FimTemplate, prefix: str, suffix: str, *, count_tokens: TokenCounter, budget_tokens: int,
                filepath: str | None = None, repo_name: str | None = None, order: FimOrder = "psm",
                prefix_share: float = PREFIX_SHARE, suffix_share: float = SUFFIX_SHARE) -> str:
    """What a prompt of ``budget_tokens`` in ``template`` shows of the file at least (see
    :func:`visible_window`; the shares are :func:`assemble_prompt`'s), after the template's own
    tokens and a small slack; the whole file when the budget leaves next to nothing. The engine
    and the training-data builder both tell retrieval this, so a training context is the one
    serving would retrieve."""
    overhead = count_tokens(template.render("", "", filepath=filepath, repo_name=repo_name, order=order))
    budget = budget_tokens - overhead - VISIBLE_SLACK_TOKENS
    if budget < 16:
        return prefix + "\n" + suffix
    return visible_window(prefix, suffix, count_tokens=count_tokens, budget_tokens=budget,
                          prefix_share=prefix_share, suffix_share=suffix_share)


def assemble_prompt(
    template: FimTemplate,
    *,
    prefix: str,
    suffix: str,
    snippets: Sequence[Snippet] = (),
    count_tokens: TokenCounter,
    budget_tokens: int,
    filepath: str | None = None,
    repo_name: str | None = None,
    suffix_share: float = SUFFIX_SHARE,
    prefix_share: float = PREFIX_SHARE,
    prefix_align_lines: int = PREFIX_ALIGN_LINES,
    order: FimOrder = "psm",
) -> AssembledPrompt:
    """Pack prefix, suffix and ranked ``snippets`` into ``budget_tokens`` of ``template``.

    Budget order: the prefix gets up to ``prefix_share`` of the space left after the
    template's own tokens, the suffix up to ``suffix_share``, context the rest; context
    space left unused flows back to the prefix, then to the suffix. Snippets are taken
    in the given (ranked) order; one that does not fit whole is cut on line boundaries.
    A prefix over budget is cut at a line whose number is a multiple of
    ``prefix_align_lines`` (see :func:`keep_last_lines`): a few lines of budget traded for
    a prompt start that stays put, and with it the KV cache, while the user types.
    ``order`` is the FIM order the template renders (``psm`` or ``spm``).
    """
    if budget_tokens <= 0:
        raise ValueError("budget_tokens must be positive")
    check_shares(prefix_share, suffix_share)
    count = count_tokens
    overhead = count(template.render("", "", filepath=filepath, repo_name=repo_name, order=order))
    available = max(budget_tokens - overhead, 0)
    # Only text near the cursor can fit: measuring a whole long file would cost milliseconds per keystroke.
    prefix = near_cursor_prefix(prefix, available * MAX_CHARS_PER_TOKEN, prefix_align_lines)
    suffix = near_cursor_suffix(suffix, available * MAX_CHARS_PER_TOKEN)

    prefix_tokens, suffix_tokens = count(prefix), count(suffix)
    prefix_budget = min(prefix_tokens, int(available * prefix_share))
    suffix_budget = min(suffix_tokens, int(available * suffix_share))
    context_budget = available - prefix_budget - suffix_budget

    packed: list[Snippet] = []
    used = 0
    separator_cost = count(template.render_context(
        [Snippet(filepath="x", body="x", source="")], filepath, None)) - count("x")
    for snippet in snippets:
        left = context_budget - used - max(separator_cost, 1)
        if left < MIN_SNIPPET_TOKENS:
            break
        cost = count(snippet.body)
        piece = snippet if cost <= left else _truncate_snippet(snippet, left, count)
        if piece is None:
            continue
        packed.append(piece)
        used += count(piece.body) + max(separator_cost, 1)

    # Unused context space goes back to the prefix first, then to the suffix.
    spare = max(context_budget - used, 0)
    extra_prefix = min(spare, prefix_tokens - prefix_budget)
    prefix_budget += extra_prefix
    suffix_budget += min(spare - extra_prefix, suffix_tokens - suffix_budget)

    kept_prefix = keep_last_lines(prefix, prefix_budget, count, align=prefix_align_lines)
    kept_suffix = keep_first_lines(suffix, suffix_budget, count)

    def render() -> str:
        return template.render(kept_prefix, kept_suffix, snippets=packed, filepath=filepath, repo_name=repo_name,
                               order=order)

    text = render()
    total = count(text)
    # Tokens can merge differently across the joins: shave whole pieces until it fits.
    while total > budget_tokens:
        if packed:
            packed.pop()
        elif kept_suffix:
            kept_suffix = keep_first_lines(kept_suffix, count(kept_suffix) - (total - budget_tokens) - 1, count)
        elif kept_prefix:
            kept_prefix = keep_last_lines(kept_prefix, count(kept_prefix) - (total - budget_tokens) - 1, count)
        else:
            break
        text = render()
        total = count(text)
    return AssembledPrompt(text=text, prompt_tokens=total, snippets=packed, prefix=kept_prefix, suffix=kept_suffix)
