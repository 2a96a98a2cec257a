"""Fill-in-the-middle prompt templates, one per model family.

Each family trains with its own sentinel tokens and its own way of showing other files
of the repository; a wrong template leaks sentinels into completions (the top complaint
about peer tools). A template therefore knows, besides how to render a prompt:

- ``required_tokens``: what a tokenizer must contain for the template to apply
  (used by :func:`detect_template` and :func:`check_compatible`);
- ``special_tokens``: every sentinel of the family; all of them are stop strings, so no
  sentinel can ever appear in returned text.

Repository context is rendered in the family's own repo format where it has one
(StarCoder2 ``<file_sep>``, Qwen2.5-Coder ``<|repo_name|>``/``<|file_sep|>``, ours),
and otherwise as a comment block in the language of the file being completed, which is
what those models saw in training (file-path comments).

To add a template: add one ``_template(...)`` entry to :data:`TEMPLATES` (sentinels,
``vocabulary`` = the family tokenizer's special tokens in its own order, end-of-text first)
and put its name in ``_DETECTION_ORDER`` (most specific token set first). Everything that
needs a family's tokens (stop strings, detection, the tiny test models, the fake backend,
the pretraining tokenizer) reads them from here.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from indexer.types import Snippet
from repocomplete.errors import TemplateMismatchError

FimOrder = Literal["psm", "spm"]
FIM_ORDERS: tuple[FimOrder, ...] = ("psm", "spm")


def declared_fim_order(model_config) -> FimOrder | None:
    """The FIM order a model's config asks to be served in (``repocomplete_fim_order``, written
    by our pretraining export), or None when it says nothing valid."""
    order = getattr(model_config, "repocomplete_fim_order", None)
    return order if order in FIM_ORDERS else None

#: Line-comment syntax by file extension, for templates without a repo format.
_LINE_COMMENTS: dict[str, str] = {
    **dict.fromkeys(
        ["py", "pyi", "rb", "r", "sh", "bash", "pl", "toml", "yaml", "yml", "jl", "ex", "exs", "nim", "cmake", "mk"],
        "#",
    ),
    **dict.fromkeys(
        ["js", "jsx", "mjs", "cjs", "ts", "tsx", "java", "go", "rs", "c", "h", "cc", "cpp", "cxx", "hpp", "hh",
         "cs", "kt", "kts", "swift", "scala", "php", "dart", "zig", "proto", "groovy"],
        "//",
    ),
    **dict.fromkeys(["rkt", "scm", "ss", "lisp", "clj", "el"], ";"),
    **dict.fromkeys(["sql", "lua", "hs", "elm"], "--"),
    **dict.fromkeys(["m", "tex", "erl"], "%"),
}


def comment_prefix_for(filepath: str | None) -> str:
    """The line-comment token for ``filepath``'s language ("#" when unknown)."""
    if not filepath:
        return "#"
    ext = posixpath.splitext(filepath)[1].lstrip(".").lower()
    return _LINE_COMMENTS.get(ext, "#")


def _comment_block(snippets: Sequence[Snippet], filepath: str | None) -> str:
    """Context as path-headed comment blocks, as file-level models were trained to read."""
    if not snippets:
        return ""
    mark = comment_prefix_for(filepath)
    parts = []
    for snippet in snippets:
        lines = [f"{mark} Path: {snippet.filepath}"]
        lines += [f"{mark} {line}" if line else mark for line in snippet.body.rstrip("\n").split("\n")]
        parts.append("\n".join(lines) + "\n")
    return "".join(parts)


@dataclass(frozen=True)
class FimTemplate:
    """How one model family lays out prefix, suffix and repository context.

    ``prefix_token``/``suffix_token``/``middle_token`` are the sentinels; ``file_sep`` and
    ``repo_token`` are set for families with a repo-level format. ``suffix_first`` means
    the family's native order is suffix-prefix-middle (Codestral).
    """

    name: str
    prefix_token: str
    suffix_token: str
    middle_token: str
    end_tokens: tuple[str, ...]
    #: Tokens a tokenizer must have for this template to be valid.
    required_tokens: frozenset[str]
    #: Other sentinels of the family (file separators, padding, ...); all become stops.
    extra_special: tuple[str, ...] = ()
    #: The family tokenizer's special tokens in its own order, end-of-text first (what the tiny
    #: test models and our pretraining tokenizer are built with); may hold non-FIM tokens.
    vocabulary: tuple[str, ...] = ()
    file_sep: str | None = None
    repo_token: str | None = None
    suffix_first: bool = False
    #: Text placed between prefix sentinel and prefix (CodeLlama puts a space).
    prefix_pad: str = ""
    suffix_pad: str = ""
    middle_pad: str = ""
    #: Where the current file's path goes in repo formats: a ``file_sep`` header line
    #: (ours, Qwen) or right after the prefix sentinel (StarCoder2).
    path_style: Literal["file_header", "after_prefix_token"] = "file_header"
    #: SPM as suffix-sentinel, suffix, prefix-sentinel, prefix (ours) rather than Bavarian et al.'s.
    spm_swaps_sentinels: bool = False
    aliases: tuple[str, ...] = field(default=())

    @property
    def special_tokens(self) -> frozenset[str]:
        """Every sentinel of the family."""
        tokens = {self.prefix_token, self.suffix_token, self.middle_token, *self.end_tokens, *self.extra_special}
        tokens |= {t for t in (self.file_sep, self.repo_token) if t}
        return frozenset(t.strip() for t in tokens if t and t.strip())

    @property
    def tokenizer_tokens(self) -> tuple[str, ...]:
        """``vocabulary`` followed by any sentinel it lacks: every special token a tokenizer
        of this family carries, end-of-text first."""
        return self.vocabulary + tuple(sorted(self.special_tokens - set(self.vocabulary)))

    @property
    def stop(self) -> tuple[str, ...]:
        """Stop strings: every sentinel, longest first so a cut never leaves a partial one."""
        return tuple(sorted(self.special_tokens, key=lambda t: (-len(t), t)))

    @property
    def has_repo_format(self) -> bool:
        return self.file_sep is not None

    def neutralize(self, text: str) -> str:
        """Break sentinel strings that occur literally in user text (e.g. in a file about FIM).

        Otherwise the tokenizer would read them as real sentinels and the model would see
        a corrupted prompt. A space after the first character keeps the text readable.
        """
        for token in self.special_tokens:
            if token in text:
                text = text.replace(token, token[0] + " " + token[1:])
        return text

    def render_context(
        self,
        snippets: Sequence[Snippet] = (),
        filepath: str | None = None,
        repo_name: str | None = None,
    ) -> str:
        """Only the repository-context part of the prompt (empty when there is none)."""
        if not self.has_repo_format:
            return self.neutralize(_comment_block(snippets, filepath))
        newline = "\n" if self.path_style == "file_header" else ""
        head = f"{self.repo_token}{repo_name}{newline}" if (self.repo_token and repo_name) else ""
        files = "".join(f"{self.file_sep}{s.filepath}\n{self.neutralize(s.body).rstrip(chr(10))}\n" for s in snippets)
        return head + files

    def render(
        self,
        prefix: str,
        suffix: str,
        *,
        snippets: Sequence[Snippet] = (),
        filepath: str | None = None,
        repo_name: str | None = None,
        order: FimOrder = "psm",
    ) -> str:
        """The full prompt; the model continues it with the middle, then an end token."""
        prefix, suffix = self.neutralize(prefix), self.neutralize(suffix)
        context = self.render_context(snippets, filepath, repo_name)
        if not self.has_repo_format:
            # File-level models saw path comments at the top of the file: inside the prefix.
            prefix, context = context + prefix, ""
        header = ""
        if self.has_repo_format and (filepath is not None or context):
            if self.path_style == "file_header":
                header = f"{self.file_sep}{filepath or ''}\n"
            else:
                # StarCoder2: <file_sep><fim_prefix>path\ncode<fim_suffix>...
                header = f"{self.file_sep}"
                if filepath:
                    prefix = f"{filepath}\n{prefix}"
        p = f"{self.prefix_token}{self.prefix_pad}{prefix}"
        s = f"{self.suffix_token}{self.suffix_pad}{suffix}"
        if self.suffix_first:
            # Codestral: the middle follows the prefix directly.
            return f"{context}{header}{s}{p}{self.middle_token}"
        if order == "spm":
            if self.spm_swaps_sentinels:
                return f"{context}{header}{s}{p}{self.middle_token}"
            # Bavarian et al.'s SPM: <PRE><SUF>suffix<MID>prefix, the middle continues the prefix.
            return f"{context}{header}{self.prefix_token}{s}{self.middle_token}{self.prefix_pad}{prefix}"
        return f"{context}{header}{p}{s}{self.middle_pad}{self.middle_token}"


def _template(**kwargs) -> FimTemplate:
    kwargs.setdefault("required_tokens", frozenset({kwargs["prefix_token"].strip(), kwargs["suffix_token"].strip(), kwargs["middle_token"].strip()}))
    return FimTemplate(**kwargs)


#: The registry; keys are template names accepted by ``--template`` / ``template=``.
TEMPLATES: dict[str, FimTemplate] = {
    t.name: t
    for t in (
        _template(
            name="repocomplete",
            prefix_token="<|rc:prefix|>", suffix_token="<|rc:suffix|>", middle_token="<|rc:middle|>",
            end_tokens=("<|rc:end|>",), extra_special=("<|rc:pad|>",),
            file_sep="<|rc:file|>", repo_token="<|rc:repo|>", path_style="file_header",
            spm_swaps_sentinels=True, aliases=("default", "rc"),
            vocabulary=("<|rc:end|>", "<|rc:pad|>", "<|rc:repo|>", "<|rc:file|>",
                        "<|rc:prefix|>", "<|rc:suffix|>", "<|rc:middle|>"),
        ),
        _template(
            name="qwen",
            prefix_token="<|fim_prefix|>", suffix_token="<|fim_suffix|>", middle_token="<|fim_middle|>",
            end_tokens=("<|endoftext|>", "<|im_end|>"), extra_special=("<|fim_pad|>",),
            file_sep="<|file_sep|>", repo_token="<|repo_name|>", path_style="file_header",
            aliases=("qwen2.5-coder", "qwen-coder"),
            vocabulary=("<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
                        "<|repo_name|>", "<|file_sep|>", "<|im_start|>", "<|im_end|>"),
        ),
        _template(
            name="starcoder",
            prefix_token="<fim_prefix>", suffix_token="<fim_suffix>", middle_token="<fim_middle>",
            end_tokens=("<|endoftext|>",), extra_special=("<fim_pad>", "<repo_name>", "<filename>", "<gh_stars>"),
            file_sep="<file_sep>", repo_token="<repo_name>", path_style="after_prefix_token",
            required_tokens=frozenset({"<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>"}),
            aliases=("starcoder2",),
            vocabulary=("<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>",
                        "<repo_name>", "<file_sep>", "<filename>", "<gh_stars>", "<issue_start>"),
        ),
        _template(
            name="starcoder1",
            prefix_token="<fim_prefix>", suffix_token="<fim_suffix>", middle_token="<fim_middle>",
            end_tokens=("<|endoftext|>",), extra_special=("<fim_pad>", "<filename>", "<gh_stars>"),
        ),
        _template(
            name="santacoder",
            prefix_token="<fim-prefix>", suffix_token="<fim-suffix>", middle_token="<fim-middle>",
            end_tokens=("<|endoftext|>",), extra_special=("<fim-pad>",),
            vocabulary=("<|endoftext|>", "<fim-prefix>", "<fim-middle>", "<fim-suffix>", "<fim-pad>"),
        ),
        _template(
            name="deepseek",
            prefix_token="<\uff5cfim\u2581begin\uff5c>", suffix_token="<\uff5cfim\u2581hole\uff5c>",
            middle_token="<\uff5cfim\u2581end\uff5c>",
            end_tokens=("<\uff5cend\u2581of\u2581sentence\uff5c>", "<|EOT|>"),
            aliases=("deepseek-coder",),
            vocabulary=("<\uff5cend\u2581of\u2581sentence\uff5c>", "<\uff5cbegin\u2581of\u2581sentence\uff5c>",
                        "<\uff5cfim\u2581begin\uff5c>", "<\uff5cfim\u2581hole\uff5c>", "<\uff5cfim\u2581end\uff5c>", "<|EOT|>"),
        ),
        _template(
            name="codellama",
            prefix_token="<PRE>", suffix_token=" <SUF>", middle_token=" <MID>",
            end_tokens=("<EOT>", "</s>"), prefix_pad=" ",
            vocabulary=("</s>", "<s>", "<PRE>", "<SUF>", "<MID>", "<EOT>"),
            required_tokens=frozenset({"<PRE>", "<SUF>", "<MID>"}),
        ),
        _template(
            name="codestral",
            prefix_token="[PREFIX]", suffix_token="[SUFFIX]", middle_token="",
            end_tokens=("</s>",), suffix_first=True,
            vocabulary=("</s>", "<s>", "[PREFIX]", "[SUFFIX]", "[MIDDLE]"),
            required_tokens=frozenset({"[PREFIX]", "[SUFFIX]"}),
        ),
    )
}

class SuffixParamTemplate:
    """For remote engines that format FIM themselves (``suffix`` parameter of /v1/completions).

    Renders repository context as comments before the prefix; the suffix travels apart.
    Used when the backend exposes no tokenizer (e.g. ``openai``) and no template was named.
    """

    name = "remote-fim"
    special_tokens: frozenset[str] = frozenset()
    stop: tuple[str, ...] = ()
    suffix_first = False

    def __init__(self) -> None:
        self._comments = TEMPLATES["santacoder"]  # a file-level family: context as path comments

    def render_context(self, snippets=(), filepath=None, repo_name=None) -> str:
        return self._comments.render_context(snippets, filepath, repo_name)

    def render(self, prefix, suffix, *, snippets=(), filepath=None, repo_name=None, order="psm") -> str:
        return self.render_context(snippets, filepath, repo_name) + prefix


_ALIASES: dict[str, str] = {alias: t.name for t in TEMPLATES.values() for alias in t.aliases}


def get_template(name: str) -> FimTemplate:
    """The template called ``name`` (or one of its aliases); ConfigError-style message otherwise."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in TEMPLATES:
        raise TemplateMismatchError(f"unknown FIM template {name!r}; choose from: {', '.join(TEMPLATES)}")
    return TEMPLATES[key]


def _normalise_tokens(tokens: Iterable[str]) -> set[str]:
    # SentencePiece vocabularies store CodeLlama's sentinels as "▁<PRE>".
    return {t.replace("\u2581", " ").strip() if t.startswith("\u2581<") else t for t in tokens}


#: Detection order: the most specific token sets first (StarCoder2 before StarCoder 1).
_DETECTION_ORDER = ("repocomplete", "qwen", "deepseek", "starcoder", "starcoder1", "santacoder", "codellama", "codestral")


def detect_template(special_tokens: Iterable[str]) -> FimTemplate:
    """Pick the template whose sentinels the tokenizer has; TemplateMismatchError if none."""
    tokens = _normalise_tokens(special_tokens)
    for name in _DETECTION_ORDER:
        template = TEMPLATES[name]
        if template.required_tokens <= tokens:
            return template
    raise TemplateMismatchError(
        "the model's tokenizer has no fill-in-the-middle tokens of a known family "
        f"({', '.join(TEMPLATES)}); pass --template NAME if it uses one under other names"
    )


def check_compatible(template: FimTemplate, special_tokens: Iterable[str]) -> None:
    """Raise TemplateMismatchError when a forced template's sentinels are missing from the tokenizer."""
    missing = template.required_tokens - _normalise_tokens(special_tokens)
    if missing:
        raise TemplateMismatchError(
            f"FIM template {template.name!r} needs tokens the model lacks: {', '.join(sorted(missing))}"
        )
