"""Golden cases for secret redaction, including the false positives it must avoid."""

from __future__ import annotations

import hashlib

import pytest

from indexer.secrets import PLACEHOLDER, contains_secret, redact, shannon_entropy

AWS_ID = "AKIA" + "IOSFODNN7EXAMPLE"          # split so scanners don't flag this file
GITHUB = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
JWT = "eyJhbGciOiJIUzI1NiJ9" + "." + "eyJzdWIiOiIxMjM0NTY3ODkwIn0" + ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"

REDACTED = [
    (f"key_id = '{AWS_ID}'", f"key_id = '{PLACEHOLDER}'"),
    (f"token = \"{GITHUB}\"", f"token = \"{PLACEHOLDER}\""),
    ("SLACK=xoxb-" + "123456789012-abcdefABCDEF", f"SLACK={PLACEHOLDER}"),
    ("stripe.api_key = '" + "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc'", f"stripe.api_key = '{PLACEHOLDER}'"),
    ("GOOGLE = 'AIza" + "SyA1234567890abcdefghijklmnopqrstuv'", f"GOOGLE = '{PLACEHOLDER}'"),
    (f"auth = '{JWT}'", f"auth = '{PLACEHOLDER}'"),
    ("client = OpenAI(api_key='sk-" + "proj-Abc123Def456Ghi789Jkl0')", f"client = OpenAI(api_key='{PLACEHOLDER}')"),
    ('api_key: str = "AbCdEf0123456789GhIjKl"', f'api_key: str = "{PLACEHOLDER}"'),
    ('val apiKey: String = "Zx9Qw8Er7Ty6Ui5Op4As"', f'val apiKey: String = "{PLACEHOLDER}"'),
    ("'secret' => 'f9a8b7c6d5e4f3a2b1c0d9e8'", f"'secret' => '{PLACEHOLDER}'"),
    ('secret_key <- "qwertyuiopASDFGHJKL12345"', f'secret_key <- "{PLACEHOLDER}"'),
    ('password := "Tr0ub4dor&3x!"', f'password := "{PLACEHOLDER}"'),
    ("DB_PASSWORD=Tr0ub4dor&3x", f"DB_PASSWORD={PLACEHOLDER}"),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", f"aws_secret_access_key = {PLACEHOLDER}"),
    ('url = "postgres://admin:hunter2pass@db:5432/x"', f'url = "postgres://admin:{PLACEHOLDER}@db:5432/x"'),
    ('headers["X-Api-Key"] = "k3yV4lu3Zx9Qw8Er7Ty6"', f'headers["X-Api-Key"] = "{PLACEHOLDER}"'),
    ("Authorization: Bearer abcdef0123456789ABCDEFxyz", f"Authorization: Bearer {PLACEHOLDER}"),
]

KEPT = [
    'token_type = "bearer"',
    f'checksum = "{hashlib.sha256(b"hello").hexdigest()}"',
    f'EXPECTED_SHA256 = "{hashlib.sha256(b"known input").hexdigest()}"',
    "token = self.next_token()",
    'password = os.environ["PW"]',
    'password = "password"',
    'SECRET_KEY = os.environ.get("SECRET_KEY")',
    "token: Optional[str] = None",
    "def get_token(self, token: str = None):",
    "self.token = token",
    'if token == "abcdefghijklmnopqrstuvwxyz":',
    'error = "Your access token has expired, please sign in again"',
    'access_token_url = "https://example.com/oauth/token"',
    'my_secret_password_here = "my_secret_password_here_too"',
    'password: ${DB_PASSWORD}',
    'secret = f"{prefix}{suffix}"',
    '"Resource": "arn:aws:secretsmanager:*:*:secret:rds-db-credentials/*"',
    "url = 'http://user:password@proxy.example.com/'",
    "passwordField.setText(userInput)",
    "tokens = tokenize(source_code)",
]


@pytest.mark.parametrize(("text", "expected"), REDACTED)
def test_redacts(text, expected):
    assert redact(text) == expected
    assert contains_secret(text)


@pytest.mark.parametrize("text", KEPT)
def test_keeps_ordinary_code(text):
    assert redact(text) == text
    assert not contains_secret(text)


def test_private_key_block_keeps_line_count():
    text = ("x = 1\nKEY = '''\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabcdef\n"
            "-----END RSA PRIVATE KEY-----\n'''\ny = 2\n")
    out = redact(text)
    assert out.count("\n") == text.count("\n")
    assert "MIIEpAIBAAKCAQEA" not in out and "PRIVATE KEY" not in out
    assert out.splitlines()[2] == PLACEHOLDER
    assert out.splitlines()[-1] == "y = 2"


def test_unterminated_private_key_is_redacted_to_the_end():
    out = redact("a\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\nzzz")
    assert out == f"a\n{PLACEHOLDER}\n\n"


def test_multiline_file_keeps_every_other_line():
    text = "import os\n" + f"TOKEN = '{GITHUB}'\n" + "def f():\n    return TOKEN\n"
    out = redact(text)
    assert out.splitlines() == ["import os", f"TOKEN = '{PLACEHOLDER}'", "def f():", "    return TOKEN"]


def test_entropy():
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == pytest.approx(2.0)
