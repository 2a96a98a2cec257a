"""Redaction of secrets inside ordinary source files.

Every stored chunk goes through :func:`redact`, so secrets never reach a prompt, a training
sample, a log or a report. Redaction keeps the number of lines (line numbers stay valid).

Two kinds of rules:
- well-known formats, redacted wherever they appear (private-key blocks, AWS access key ids,
  GitHub/Slack/Stripe/Google/OpenAI tokens, JWTs, passwords inside URLs, bearer tokens);
- high-entropy values assigned to a secret-looking name (``password``, ``secret``,
  ``token``, ``api_key``, ...) with any language's assignment syntax (``=``, ``:``, ``=>``,
  ``<-``, ``:=``). Names such as ``checksum`` or short values such as ``"bearer"`` are left
  alone, which is what keeps ordinary code readable.
"""

from __future__ import annotations

import math
import re
from collections import Counter

PLACEHOLDER = "<REDACTED>"

#: Minimum length and Shannon entropy (bits per character) of an assigned secret value.
MIN_SECRET_LENGTH = 16
MIN_ENTROPY = 3.0
#: Passwords are often short; they need only look like a literal password, not a word.
MIN_PASSWORD_LENGTH = 8

_PRIVATE_KEY = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY( BLOCK)?-----.*?(?:-----END \1PRIVATE KEY( BLOCK)?-----|\Z)",
    re.S,
)

# (literal triggers, pattern): a pattern runs only when one of its triggers occurs, which
# keeps redaction at tens of MB/s on ordinary code (a big alternation is slow in ``re``).
_TOKEN_FORMATS: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = tuple(
    (triggers, re.compile(pattern)) for triggers, pattern in [
        (("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA"),   # AWS key ids
         r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\b"),
        (("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b"),                   # GitHub tokens
        (("github_pat_",), r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b"),
        (("xox",), r"\bxox[baprs]-[A-Za-z0-9-]{10,}"),                    # Slack
        (("k_live_",), r"\b[sr]k_live_[0-9A-Za-z]{16,}\b"),              # Stripe
        (("AIza",), r"\bAIza[0-9A-Za-z_\-]{35}"),                         # Google API key
        (("eyJ",), r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),  # JWT
        (("sk-",), r"(?<![\w-])sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"),   # OpenAI / Anthropic
        (("glpat-",), r"\bglpat-[A-Za-z0-9_-]{20,}"),                     # GitLab
        (("npm_",), r"\bnpm_[A-Za-z0-9]{36}\b"),                         # npm
        (("hf_",), r"\bhf_[A-Za-z]{34}\b"),                              # Hugging Face
    ]
)

# Any token format's literal start; one search of it skips all formats in ordinary files.
_TOKEN_TRIGGER = re.compile(
    r"A(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA|Iza)|gh[pousr]_|github_pat_|xox|k_live_|eyJ|sk-"
    r"|glpat-|npm_|hf_"
)

# "scheme://user:password@host": the password only. Starts with a literal (fast search).
_URL_PASSWORD = re.compile(r"://([^/\s:@'\"]+):([^/\s@'\"]{3,})(?=@)")
# "Authorization: Bearer <token>".
_BEARER = re.compile(r"(?i)(\bbearer\s+)([A-Za-z0-9\-._~+/]{20,}=*)")

_NAME = (
    r"(?<![\w.$@-])[\w.$@-]*?"
    r"(?:password|passwd|passphrase|pwd|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|auth[_-]?key|client[_-]?secret|credentials?)"
    r"[\w-]*"
)
# NAME ["'\]]? (=|:|=>|<-|:=) VALUE, VALUE quoted or bare (YAML, .ini, shell).
_ASSIGNMENT = re.compile(
    r"(?i)(?P<name>" + _NAME + r")[\"'\]]{0,2}"
    r"(?:\s*:\s*[A-Za-z_][\w.\[\], |]*?(?=\s*=[^=>]))?"    # a type annotation
    r"\s*(?P<op>:=|=>|<-|=(?!=)|:)(?P<space>\s*)"
    r"(?:(?P<q>[\"'`])(?P<quoted>[^\"'`\n]*)(?P=q)|(?P<bare>[A-Za-z0-9+/=_\-.~!@#%^&*]+))"
)
# Finds candidate lines in lower-cased text: a name _NAME accepts, soon followed by an
# assignment operator (":" of "name: type = value" included).
_KEYWORD = re.compile(r"(?:pass|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key"
                      r"|auth[_-]?key|credential)[\w.$@\-\"'\]]*\s*(?:[:=]|<-)")
_PASSWORD_NAME = re.compile(r"(?i)pass|pwd")
# Values that are obviously not secrets: placeholders, templates, environment lookups.
_NOT_A_SECRET = re.compile(
    r"(?i)^(?:.*\{.*\}.*|x+|\*+|\.+|<[^>]*>|\$\{?\w+\}?|\{\{.*\}\}|%\(?\w+\)?s?|changeme|change_me|"
    r"none|null|nil|true|false|pass|password|secret|example|dummy|test|redacted|your[_-].*)$"
)
_WORDS = re.compile(r"^[a-z]+(?:[_\- ][a-z]+)*$")
_IDENTIFIER_PATH = re.compile(r"^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*$")


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value`` (0.0 for an empty string)."""
    if not value:
        return 0.0
    total = len(value)
    return -sum(n / total * math.log2(n / total) for n in Counter(value).values())


def redact(text: str) -> str:
    """Return ``text`` with every secret replaced by ``<REDACTED>``, same number of lines."""
    if not text:
        return text
    if "-----BEGIN" in text:
        text = _PRIVATE_KEY.sub(_redact_block, text)
    if _TOKEN_TRIGGER.search(text):
        for triggers, pattern in _TOKEN_FORMATS:
            if any(trigger in text for trigger in triggers):
                text = pattern.sub(PLACEHOLDER, text)
    if "://" in text:
        text = _URL_PASSWORD.sub(_redact_url_password, text)
    lowered = text.lower()
    if "bearer" in lowered:
        text = _BEARER.sub(lambda m: m.group(1) + PLACEHOLDER, text)
    return _redact_assignments(text)


def _redact_assignments(text: str) -> str:
    """Apply the assignment rule to the lines holding a secret-looking name only."""
    pieces: list[str] = []
    done = 0
    for hit in _KEYWORD.finditer(text.lower()):
        if hit.start() < done:
            continue                    # this line was handled already
        start = text.rfind("\n", 0, hit.start()) + 1
        end = text.find("\n", hit.end())
        end = len(text) if end < 0 else end
        pieces.append(text[done:start])
        pieces.append(_ASSIGNMENT.sub(_redact_assignment, text[start:end]))
        done = end
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def contains_secret(text: str) -> bool:
    """True when :func:`redact` would change ``text``."""
    return redact(text) != text


def _redact_url_password(match: re.Match[str]) -> str:
    if _NOT_A_SECRET.match(match.group(2)):
        return match.group(0)           # "user:password@host" in documentation
    return f"://{match.group(1)}:{PLACEHOLDER}"


def _redact_block(match: re.Match[str]) -> str:
    # One placeholder line, then as many empty lines as the block had, so lines stay put.
    return PLACEHOLDER + "\n" * match.group(0).count("\n")


def _redact_assignment(match: re.Match[str]) -> str:
    quoted = match.group("quoted")
    value = quoted if quoted is not None else match.group("bare")
    if quoted is None and match.group("op") == ":" and not match.group("space"):
        return match.group(0)   # "arn:aws:secret:name", "key:value" inside a string
    if not _looks_secret(match.group("name"), value, bare=quoted is None):
        return match.group(0)
    start = match.start("quoted" if quoted is not None else "bare") - match.start()
    whole = match.group(0)
    return whole[:start] + PLACEHOLDER + whole[start + len(value):]


def _looks_secret(name: str, value: str, *, bare: bool) -> bool:
    if PLACEHOLDER in value or _NOT_A_SECRET.match(value) or value.lower() in name.lower():
        return False
    if _WORDS.match(value) or "://" in value or any(c.isspace() for c in value):
        return False        # prose, an identifier or a URL, not a secret
    if bare and _IDENTIFIER_PATH.match(value) and ("." in value or not re.search(r"\d", value)):
        return False        # code: `token = self.next_token`, `secret: str`
    if len(value) >= MIN_SECRET_LENGTH:
        return shannon_entropy(value) >= MIN_ENTROPY
    if _PASSWORD_NAME.search(name) and len(value) >= MIN_PASSWORD_LENGTH and " " not in value:
        # Short password literals: mixed character classes, not a plain word.
        classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"\d", r"[^\w]"))
        return classes >= 3 and shannon_entropy(value) >= 2.5
    return False
