"""``make audit``: known vulnerabilities in the locked Python packages and the extension's npm packages.

Each audit runs only where its database answers; otherwise it prints one ``SKIPPED`` line that
says which database was unreachable, and does not fail (an offline machine cannot audit, and a
tool that then reports "no known vulnerabilities" would be lying). Exit status: 1 when an audit
that ran found something or failed, else 0.

pip-audit checks the pins of ``requirements/test.lock`` (a superset of ``run.lock``) without
installing anything (``--disable-pip --require-hashes``), against PyPI's advisory data or, when PyPI's
JSON API is not reachable, OSV's. npm audit checks ``extension/package-lock.json``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "test.lock"

#: vulnerability service name for pip-audit -> a request that succeeds when its database answers
#: (pip-audit asks PyPI per release: a mirror may serve /pypi/NAME/json but not /pypi/NAME/VERSION/json)
PYTHON_DATABASES = {
    "pypi": ("https://pypi.org/pypi/pip/20.0/json", None),
    "osv": ("https://api.osv.dev/v1/query", {"package": {"name": "pip", "ecosystem": "PyPI"}, "version": "20.0"}),
}
#: what npm prints when its advisory endpoint cannot be used (offline, proxy, mirror without audit)
NPM_UNREACHABLE = ("audit endpoint returned an error", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNREFUSED",
                   "ECONNRESET", "network request", "This command requires an existing lockfile")


def reachable(url: str, body: dict | None, timeout: float = 10.0) -> bool:
    """Whether ``url`` answers 2xx (a POST of ``body`` as JSON when given)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def audit_python() -> tuple[str, int]:
    """(one-line outcome, exit status) of pip-audit over the lock."""
    service = next((name for name, (url, body) in PYTHON_DATABASES.items() if reachable(url, body)), None)
    if service is None:
        urls = ", ".join(url for url, _ in PYTHON_DATABASES.values())
        return f"pip-audit: SKIPPED: no vulnerability database reachable ({urls})", 0
    done = subprocess.run([sys.executable, "-m", "pip_audit", "--disable-pip", "--require-hashes", "--progress-spinner", "off",
                           "--vulnerability-service", service, "-r", str(LOCK)], text=True)
    verdict = "no known vulnerabilities" if done.returncode == 0 else "FOUND vulnerabilities (or failed), see above"
    return f"pip-audit ({service}) on {LOCK.relative_to(ROOT)}: {verdict}", done.returncode


def npm_unreachable(output: str) -> bool:
    """Whether npm audit's output says its database could not be used (as opposed to findings)."""
    return any(marker in output for marker in NPM_UNREACHABLE)


def audit_npm() -> tuple[str, int]:
    """(one-line outcome, exit status) of npm audit over the extension's lock file."""
    npm = shutil.which("npm")
    if npm is None:
        return "npm audit: SKIPPED: npm is not installed (apt-get install npm)", 0
    done = subprocess.run([npm, "audit", "--omit=dev"], cwd=ROOT / "extension", capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    if done.returncode != 0 and npm_unreachable(output):
        reason = next(line for line in output.splitlines() if npm_unreachable(line))
        return f"npm audit: SKIPPED: the registry's audit endpoint is not usable from here ({reason.strip()})", 0
    sys.stdout.write(output)
    verdict = "no known vulnerabilities" if done.returncode == 0 else "FOUND vulnerabilities, see above"
    return f"npm audit on extension/package-lock.json: {verdict}", done.returncode


def main() -> int:
    outcomes = [audit_python(), audit_npm()]
    for line, _ in outcomes:
        print(line)
    return 1 if any(status for _, status in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
