"""CPU time of the hot paths in two source trees, alternated: what a refactoring itself costs.

    python bench/cpu_ab.py OLD_TREE NEW_TREE [--rounds 3]

A tree is a checkout of this repository (``git archive <commit> | tar -x -C DIR``). Each
measurement runs in a fresh subprocess with that tree first on ``PYTHONPATH``, the trees
alternating, and is timed with ``time.process_time()`` (CPU time of the process, threads
included), which a shared machine's load disturbs far less than wall-clock time:

- ``Workspace.update()`` of ``email/_header_value_parser.py``, 60 one-line edits (CPU ms each);
- ``Workspace.retrieve()``, all default sources, 200 cursors in the same file (CPU ms each);
- a full index of five stdlib packages with ``workers=1``, best of three rebuilds (CPU s);
- the server's request mapping (``completion_request`` + ``completion_response``, CPU µs).

Prints each measurement's medians and the ratio new ÷ old (target: ≤ 1.05 for a refactoring).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

MEASURE = r'''
import json, shutil, sysconfig, tempfile, time
from pathlib import Path
from indexer.config import IndexConfig
from indexer.types import RetrievalQuery
from indexer.workspace import Workspace

stdlib = Path(sysconfig.get_paths()["stdlib"])
tmp = Path(tempfile.mkdtemp())
out = {}
try:
    repo = tmp / "repo"
    shutil.copytree(stdlib / "email", repo / "email")
    src = (repo / "email" / "_header_value_parser.py").read_text()
    with Workspace(repo, cache_dir=tmp / "cache") as ws:
        ws.index()
        ws.update("email/_header_value_parser.py", src)
        start = time.process_time()
        for i in range(60):
            ws.update("email/_header_value_parser.py", src.replace("\n", f"  # e{i}\n", 1))
        out["update_cpu_ms"] = (time.process_time() - start) / 60 * 1000
        lines = src.split("\n")
        cursors = range(200, 2000, 9)
        start = time.process_time()
        for i in cursors:
            ws.retrieve(RetrievalQuery("email/_header_value_parser.py", "\n".join(lines[:i]) + "\n", "\n".join(lines[i:])))
        out["retrieve_cpu_ms"] = (time.process_time() - start) / len(cursors) * 1000
    big = tmp / "big"
    for package in ("email", "json", "http", "logging", "asyncio"):
        shutil.copytree(stdlib / package, big / package)
    with Workspace(big, cache_dir=tmp / "cache", config=IndexConfig(workers=1)) as ws:
        runs = []
        for _ in range(3):
            start = time.process_time()
            ws.index(rebuild=True)
            runs.append(time.process_time() - start)
        out["index_cpu_s"] = min(runs)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

from repocomplete.types import Choice, CompletionResult, Timings
from server.mapping import completion_request, completion_response
from server.schemas import CompletionIn
from server.settings import ServerSettings

body = CompletionIn.model_validate({"language": "python", "max_tokens": 32, "segments": {
    "prefix": "x = 1\n" * 300, "suffix": "\n" * 20, "filepath": "a.py",
    "declarations": [{"filepath": "b.py", "body": "def b(): ..."}]}})
settings = ServerSettings()
result = CompletionResult(id="c", choices=[Choice(0, "abc")], model="m", timings=Timings(1, 2, 3, 4))
start = time.process_time()
for _ in range(5000):
    completion_request(body, settings)
    completion_response(result)
out["mapping_cpu_us"] = (time.process_time() - start) / 5000 * 1e6
print(json.dumps(out))
'''


def measure(tree: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", MEASURE], cwd=tree, env=env, capture_output=True, text=True,
                          timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"measuring {tree} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old", type=Path, help="the tree before the change")
    parser.add_argument("new", type=Path, help="the tree after the change")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    for _ in range(args.rounds):
        runs["old"].append(measure(args.old.resolve()))
        runs["new"].append(measure(args.new.resolve()))
    print("| measurement | old (median) | new (median) | new ÷ old |\n|---|---|---|---|")
    for key in runs["old"][0]:
        old = statistics.median(r[key] for r in runs["old"])
        new = statistics.median(r[key] for r in runs["new"])
        print(f"| {key} | {old:.2f} | {new:.2f} | {new / old:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
