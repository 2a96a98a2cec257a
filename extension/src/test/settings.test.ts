import { strict as assert } from "node:assert";
import { test } from "node:test";
import { initializationOptions, needsRestart, parseStatus, SERVER_SETTINGS, serverCommand, statusBarText } from "../settings";

const getter = (values: Record<string, unknown>) => (key: string) => values[key];

test("initializationOptions passes server settings, maps empty strings to null, drops others", () => {
  const options = initializationOptions(
    getter({ serverUrl: "", model: "default", debounceMs: 0, languages: { markdown: false }, pythonPath: "/usr/bin/python3", enable: false }),
  );
  assert.deepEqual(options, { serverUrl: null, model: "default", debounceMs: 0, languages: { markdown: false }, enable: false });
});

test("serverCommand uses pythonPath, then REPOCOMPLETE_PYTHON, then python3", () => {
  assert.deepEqual(serverCommand(getter({ pythonPath: " /opt/venv/bin/python " }), {}), {
    command: "/opt/venv/bin/python",
    args: ["-m", "repocomplete", "lsp"],
  });
  assert.equal(serverCommand(getter({ pythonPath: "" }), { REPOCOMPLETE_PYTHON: "/x/python" }).command, "/x/python");
  assert.equal(serverCommand(getter({}), {}).command, "python3");
});

test("only a pythonPath change restarts the server", () => {
  assert.equal(needsRestart((s) => s === "repocomplete.pythonPath"), true);
  assert.equal(needsRestart((s) => s === "repocomplete.serverUrl"), false);
});

test("status bar shows ready, indexing and error distinctly", () => {
  assert.deepEqual(statusBarText({ state: "ready", message: "ready (fake)" }), { text: "$(check) repocomplete", tooltip: "ready (fake)" });
  assert.match(statusBarText({ state: "indexing", message: "indexing 3/9 files" }).text, /sync~spin.*indexing/);
  assert.match(statusBarText({ state: "error", message: "" }).text, /\$\(error\) repocomplete: error/);
  assert.deepEqual(parseStatus({ state: "ready" }), { state: "ready", message: "" });
  assert.equal(parseStatus("nonsense").state, "error");
});

test("package.json declares every setting the server understands, plus pythonPath", () => {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const manifest = require("../../package.json");
  const declared = Object.keys(manifest.contributes.configuration.properties);
  for (const key of [...SERVER_SETTINGS, "pythonPath"]) {
    assert.ok(declared.includes(`repocomplete.${key}`), `repocomplete.${key} is declared`);
  }
});
