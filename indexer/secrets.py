"""Redaction of secrets inside ordinary source files.

Every stored chunk goes through :func:`redact`, so secrets never reach a prompt, a training
sample, a log or a report. Redaction keeps the number of lines (line numbers stay valid).

The rules follow the field's rule sets (gitleaks' format rules and its keyword + entropy
"generic" rule, detect-secrets' keyword detector and entropy limits). Two kinds:
- well-known formats, redacted wherever they appear, glued to other text or not (private-key
  blocks, base64-encoded private keys as in kubeconfig ``client-key-data``, AWS access key
  ids, GitHub/Slack/Stripe/Google/OpenAI tokens, Slack and Discord webhook URLs, JWTs,
  passwords inside URLs, bearer tokens, HTTP basic credentials);
- values assigned to a secret-looking name with any language's assignment syntax (``=``,
  ``:``, ``=>``, ``<-``, ``:=``). Strong names (``password``, ``db_pass``, ``secret``,
  ``token``, ``api_key``, ...) need a high-entropy value, or, when quoted, a short literal
  with a digit that is not a word; weak names (any ``*_key`` such as ``FERNET_KEY`` or
  ``HMAC_KEY``, ``*key-data``, ``auth``) need a value that looks generated: a long hex
  string, a mixed-case alphanumeric string of high entropy, or base64 of ``user:password``
  (Docker's ``"auth"``). Names such as ``checksum`` or values such as ``"bearer"`` are left
  alone, which is what keeps ordinary code readable (the whole standard library passes
  unchanged: see the tests).
"""

from __future__ import annotations

import base64
import binascii
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
        (("hooks.slack.com",),                                           # Slack webhooks
         r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{20,}"),
        (("discord",), r"discord(?:app)?\.com/api/webhooks/\d+/[A-Za-z0-9_-]{20,}"),
    ]
)

# AWS key ids (base32 after the prefix), also glued to other text ("idAKIA...", "AKIA...x"):
# no word boundaries, so an entropy floor (gitleaks: 3) keeps base64 blobs out.
_AWS_KEY_ID = re.compile(r"(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16}")
# Any token format's literal start; one search of it skips all formats in ordinary files.
_TOKEN_TRIGGER = re.compile(
    r"A(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA|BIA|CCA|3T|Iza)|gh[pousr]_|github_pat_|xox|k_live_|eyJ|sk-"
    r"|glpat-|npm_|hf_|hooks\.slack\.com/|discord(?:app)?\.com/"
)
_AWS_TRIGGER = ("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA", "ABIA", "ACCA", "A3T")


# "scheme://user:password@host": the password only. Starts with a literal (fast search).
_URL_PASSWORD = re.compile(r"://([^/\s:@'\"]+):([^/\s@'\"]{3,})(?=@)")
# "Authorization: Bearer <token>".
_BEARER = re.compile(r"(?i)(\bbearer\s+)([A-Za-z0-9\-._~+/]{20,}=*)")
# "Authorization: Basic <base64 of user:password>" (redacted only when it decodes so).
# One pattern per spelling: a literal start is searched fast, "(?i)" or "\b" first is not.
_BASIC = tuple(re.compile(word + r"(\s+)([A-Za-z0-9+/]{8,}={0,2})(?![\w+/=])") for word in ("Basic", "basic", "BASIC"))
# base64 of "-----BEGIN": a PEM block inside YAML/JSON (kubeconfig client-key-data, k8s Secrets).
_B64_PEM = re.compile(r"LS0tLS1CRUdJTi[A-Za-z0-9+/]*={0,2}")

#: Names whose value is a secret when it is not obviously code or prose (detect-secrets' list).
_STRONG = (r"password|passwd|passphrase|pwd|pass(?![a-z])|secret|token|api[_-]?key|apikey|access[_-]?key"
           r"|private[_-]?key|auth[_-]?key|client[_-]?secret|credentials?")
_STRONG_NAME = re.compile(_STRONG, re.I)
_NAME = (
    r"(?<![\w.$@/+-])[\w.$@-]*?"     # not inside a path or a base64 blob
    r"(?:(?:" + _STRONG + r")[\w-]*"
    # weak names: any name ending in key (FERNET_KEY, HMAC_KEY), key-data, key_base, auth
    r"|(?:key(?:[_-]?(?:data|base))?|auth)(?![a-z0-9]))"
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
# Weak names count only with a token-like value right after (``key = ...`` is everywhere);
# one pattern per literal start, which ``re`` searches fast.
_WEAK_VALUE = r"[\"'\]]{0,2}\s*(?::\s*[\w.\[\]]+\s*)?(?::=|=>|<-|=|:)\s*[\"'`]?[a-z0-9+/=_\-.]{8}"
_WEAK_KEYWORDS = (re.compile(r"key(?:[_-]?(?:data|base))?" + _WEAK_VALUE), re.compile(r"auth" + _WEAK_VALUE))
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
        if any(trigger in text for trigger in _AWS_TRIGGER):
            text = _AWS_KEY_ID.sub(lambda m: PLACEHOLDER if shannon_entropy(m.group(0)) >= 3.0 else m.group(0), text)
        for triggers, pattern in _TOKEN_FORMATS:
            if any(trigger in text for trigger in triggers):
                text = pattern.sub(PLACEHOLDER, text)
    if "://" in text:
        text = _URL_PASSWORD.sub(_redact_url_password, text)
    lowered = text.lower()
    if "bearer" in lowered:
        text = _BEARER.sub(lambda m: m.group(1) + PLACEHOLDER, text)
    if "basic" in lowered:
        for pattern in _BASIC:
            text = pattern.sub(_redact_basic, text)
    if "LS0tLS1CRUdJTi" in text:
        text = _B64_PEM.sub(_redact_b64_pem, text)
    return _redact_assignments(text)


def _redact_assignments(text: str) -> str:
    """Apply the assignment rule to the lines holding a secret-looking name only."""
    lowered = text.lower()
    hits = [hit.start() for hit in _KEYWORD.finditer(lowered)]
    for pattern in _WEAK_KEYWORDS:
        hits += [hit.start() for hit in pattern.finditer(lowered)]
    pieces: list[str] = []
    done = 0
    for hit in sorted(hits):
        if hit < done:
            continue                    # this line was handled already
        start = text.rfind("\n", 0, hit) + 1
        end = text.find("\n", hit)
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
    if quoted is None and match.string[match.end():match.end() + 1] in ("(", "["):
        return match.group(0)   # a call or a subscript: `token = b64encode(userpass)`
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
    if _basic_credential(value):
        return True         # base64 of user:password (Docker's "auth", HTTP basic)
    if not _STRONG_NAME.search(name):
        return _looks_generated(value)
    if len(value) >= MIN_SECRET_LENGTH:
        return shannon_entropy(value) >= MIN_ENTROPY
    if _short_secret(value, bare=bare):
        return True
    if _PASSWORD_NAME.search(name) and len(value) >= MIN_PASSWORD_LENGTH:
        # Short password literals: mixed character classes, not a plain word.
        return _classes(value, symbols=True) >= 3 and shannon_entropy(value) >= 2.5
    return False


def _classes(value: str, *, symbols: bool = False) -> int:
    patterns = (r"[a-z]", r"[A-Z]", r"\d") + ((r"[^\w]",) if symbols else ())
    return sum(bool(re.search(p, value)) for p in patterns)


def _short_secret(value: str, *, bare: bool) -> bool:
    """A short value of a strong name (``api_key = "k9x2m4q7"``, ``DB_PASS=hunter22``): at least
    two digits, no word longer than six letters (``"Llama2Tokenizer"`` is a name), not a path;
    bare ones without ``_`` (code is ``token = next_token2``)."""
    if len(value) < MIN_PASSWORD_LENGTH or value[0] in "/.~" or (bare and "_" in value):
        return False
    if sum(c.isdigit() for c in value) < 2 or re.search(r"[A-Za-z]{7}", value):
        return False
    return shannon_entropy(value) >= 2.5


def _looks_generated(value: str) -> bool:
    """The value of a weak name (``HMAC_KEY``, ``client-key-data``): a long hex string, or long
    mixed-case alphanumerics (base64) of high entropy (gitleaks' generic rule: 3.5 bits)."""
    if len(value) < 20:
        return False
    if re.fullmatch(r"[0-9a-fA-F]{32,}", value):
        return True
    if not re.fullmatch(r"[A-Za-z0-9+/=_\-.]+", value):
        return False
    return _classes(value) == 3 and sum(c.isdigit() for c in value) >= 2 and shannon_entropy(value) >= 3.5


def _basic_credential(value: str) -> bool:
    """True for base64 of ``user:password`` (printable, a colon inside)."""
    if len(value) < 8 or len(value) % 4 or not re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", value):
        return False
    try:
        decoded = base64.b64decode(value, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return decoded.isprintable() and ":" in decoded[1:-1]


def _redact_basic(match: re.Match[str]) -> str:
    start = match.start()
    if (start and (match.string[start - 1].isalnum() or match.string[start - 1] == "_")) or not _basic_credential(match.group(2)):
        return match.group(0)
    return match.group(0)[: match.start(2) - start] + PLACEHOLDER


def _redact_b64_pem(match: re.Match[str]) -> str:
    head = match.group(0)[:64]
    try:
        decoded = base64.b64decode(head[: len(head) // 4 * 4])
    except binascii.Error:
        return match.group(0)
    return PLACEHOLDER if b"PRIVATE KEY" in decoded else match.group(0)
