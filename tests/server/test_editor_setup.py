"""The editor set-up `repocomplete run` prints works as printed: a real Neovim, the extension's own settings schema."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import httpx
import jsonschema_rs

from server.quickstart import MIN_NEOVIM, editor_setup, neovim_config, python_executable, vscode_settings
from tests.editors import complete_in_neovim
from tests.server.conftest import FAKE_TEXT, ROOT

SOURCE = "import os\n\n\ndef total(values, offset):\n    "


def extension_settings_schema() -> dict:
    """A JSON schema of the settings the packaged extension contributes (the .vsix's manifest if built)."""
    vsix = sorted((ROOT / "extension").glob("*.vsix"))
    if vsix:
        with zipfile.ZipFile(vsix[-1]) as archive:
            manifest = json.loads(archive.read("extension/package.json"))
    else:
        manifest = json.loads((ROOT / "extension" / "package.json").read_text())
    properties = manifest["contributes"]["configuration"]["properties"]
    return {"type": "object", "properties": properties, "additionalProperties": False}


def printed_block(output: str, header: str) -> str:
    """The 4-space-indented lines printed under ``header``, unindented."""
    lines = []
    for line in output.split(header + "\n", 1)[1].splitlines():
        if not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines) + "\n"


def printed_vscode_settings(output: str) -> dict:
    return json.loads(printed_block(output, "then add to your user settings.json (pythonPath, serverUrl, token: user settings only):"))


def printed_neovim_config(output: str) -> str:
    return printed_block(output, "add to init.lua:")


def test_printed_vscode_settings_are_valid_for_the_extension_and_name_the_venv_python():
    output = editor_setup("http://127.0.0.1:8765", python_executable())
    settings = printed_vscode_settings(output)
    jsonschema_rs.validate(extension_settings_schema(), settings)
    assert settings == vscode_settings("http://127.0.0.1:8765", python_executable())
    assert Path(settings["repocomplete.pythonPath"]).is_absolute() and Path(settings["repocomplete.pythonPath"]).exists()
    assert f"Neovim {MIN_NEOVIM}+" in output and "VS Code 1.85+" in output


def test_printed_neovim_setup_completes_in_a_real_headless_neovim(serve, processes, tmp_path):
    served = serve(env={"REPOCOMPLETE_FAKE_TEXT": FAKE_TEXT})
    init_lua = printed_neovim_config(editor_setup(served.url, python_executable()))
    assert init_lua == neovim_config(served.url, python_executable())
    result = complete_in_neovim(processes, init_lua, SOURCE, tmp_path)
    assert result["attached"], result
    expected = httpx.post(f"{served.url}/v1/completions", timeout=30, json={
        "language": "python", "segments": {"prefix": SOURCE, "suffix": "", "filepath": "pkg/mod.py"}}).json()
    assert result["items"] and result["items"][0] == expected["choices"][0]["text"] != "", (result, expected)
