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


# --- issue 21.8: realistic variants that reached the store before (gitleaks / detect-secrets style) --

FERNET = "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg="
HMAC_HEX = hashlib.sha256(b"hmac key of the review").hexdigest()
DOCKER_AUTH = "dXNlcjpzM2NyM3RQYXNz"            # base64("user:s3cr3tPass")
# base64 of an RSA private key's first line and a few bytes, as kubeconfig's client-key-data holds it
KUBE_KEY = "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQpNSUlFcEFJQkFBS0NBUUVBNzZmM2Zk"
KUBE_CERT = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUMvakNDQWVhZ0F3SUJBZ0lCQURB"
SLACK_HOOK = "https://hooks.slack.com/services/" + "T0A1B2C3D/B0E4F5G6H/abcdEFGHijklMNOPqrstUVWX"

VARIANTS = [
    (f'FERNET_KEY = "{FERNET}"', f'FERNET_KEY = "{PLACEHOLDER}"'),
    (f"HMAC_KEY = '{HMAC_HEX}'", f"HMAC_KEY = '{PLACEHOLDER}'"),
    ('JWT_SIGNING_KEY = "q8Zr3Lx0Vb7Nm2Kt5Wp9Yc4Hd6Js1Fg"', f'JWT_SIGNING_KEY = "{PLACEHOLDER}"'),
    ('signingKey: "q8Zr3Lx0Vb7Nm2Kt5Wp9Yc4Hd6Js1Fg"', f'signingKey: "{PLACEHOLDER}"'),
    ("DB_PASS=hunter22", f"DB_PASS={PLACEHOLDER}"),
    ('DB_PASS = "s3cr3t!x"', f'DB_PASS = "{PLACEHOLDER}"'),
    ('api_key = "k9x2m4q7"', f'api_key = "{PLACEHOLDER}"'),
    ('API_KEY = "a1b2c3d4e5"', f'API_KEY = "{PLACEHOLDER}"'),
    (f'WEBHOOK = "{SLACK_HOOK}"', f'WEBHOOK = "https://{PLACEHOLDER}"'),
    (f'post("{SLACK_HOOK}", json=msg)', f'post("https://{PLACEHOLDER}", json=msg)'),
    ('hook = "https://discord.com/api/webhooks/123456789012345678/' + 'aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5zA7bC9"',
     f'hook = "https://{PLACEHOLDER}"'),
    ('{"auths": {"registry.example.com": {"auth": "' + DOCKER_AUTH + '"}}}',
     '{"auths": {"registry.example.com": {"auth": "' + PLACEHOLDER + '"}}}'),
    (f"    client-key-data: {KUBE_KEY}", f"    client-key-data: {PLACEHOLDER}"),
    (f'key = "{KUBE_KEY}"', f'key = "{PLACEHOLDER}"'),
    (f"aws_id{AWS_ID}", f"aws_id{PLACEHOLDER}"),
    (f"{AWS_ID}:wJalrXUtn", f"{PLACEHOLDER}:wJalrXUtn"),
    (f"creds={AWS_ID}abc", f"creds={PLACEHOLDER}abc"),
    ("Authorization: Basic " + DOCKER_AUTH, f"Authorization: Basic {PLACEHOLDER}"),
]

VARIANTS_KEPT = [
    f"    client-certificate-data: {KUBE_CERT}",     # a certificate is public
    'sort_key = "created_at"',
    "key = lambda item: item[1]",
    'cache_key = "user_profile_settings_v2"',
    'primary_key = "id"',
    'auth = "basic"',
    "author = 'Jane Doe <jane@example.org>'",
    'tokenizer_type = "Llama2Tokenizer"',
    "token = b64encode(userpass).decode()",
    "user = User(username='scolvin', password='password1')",
    "bypass = True",
    'pwd = "/usr/local/bin"',
    'KEYWORD = "AKIA is how AWS key ids start"',
    "basic operations are cheap",
    "QAHAEwAAQAAAAAAAgAHAGQAAQAAAAAAAwAaAKIAAQAAAAAABAAHAM0AAQAAAAAABQA8AU8AAQAAAA",
]


@pytest.mark.parametrize(("text", "expected"), REDACTED + VARIANTS)
def test_redacts(text, expected):
    assert redact(text) == expected
    assert contains_secret(text)


@pytest.mark.parametrize("text", KEPT + VARIANTS_KEPT)
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


def test_the_standard_library_is_not_redacted():
    """False-positive guard on real code: the whole standard library (tests aside) passes unchanged."""
    import sysconfig
    from pathlib import Path

    root = Path(sysconfig.get_paths()["stdlib"])
    changed = []
    files = [p for p in sorted(root.rglob("*.py")) if "test" not in p.parts and "site-packages" not in p.parts]
    assert len(files) > 300
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        out = redact(text)
        if out != text:
            changed += [f"{path.name}: {a.strip()}" for a, b in zip(text.split("\n"), out.split("\n")) if a != b]
    assert not changed, changed[:10]
