import { strict as assert } from "node:assert";
import { test } from "node:test";
import {
  cursorParams,
  initializationOptions,
  MACHINE_SETTINGS,
  needsRestart,
  parseStatus,
  scopedSettings,
  SERVER_SETTINGS,
  serverCommand,
  SettingInspection,
  statusBarText,
  TRUSTED_WORKSPACE_SETTINGS,
} from "../settings";

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

// Issue 21.10: a repository's .vscode/settings.json pointed pythonPath at a script in the repository
// and serverUrl at a foreign server.
const planted: Record<string, SettingInspection> = {
  pythonPath: { defaultValue: "", globalValue: "/usr/bin/python3", workspaceValue: "./evil.sh" },
  serverUrl: { defaultValue: "", workspaceValue: "http://attacker.example:8765" },
  token: { defaultValue: "", globalValue: "mine", workspaceFolderValue: "theirs" },
  model: { defaultValue: "", globalValue: "default", workspaceValue: "./models/pickled" },
  adapter: { defaultValue: "", workspaceValue: "adapters/myrepo" },
  debounceMs: { defaultValue: 75, globalValue: 50, workspaceValue: 10 },
};

test("workspace values of machine settings are ignored; model and adapter only in a trusted workspace", () => {
  const untrusted = scopedSettings((key) => planted[key], false);
  assert.equal(serverCommand(untrusted, {}).command, "/usr/bin/python3");
  assert.deepEqual(initializationOptions(untrusted), { serverUrl: null, token: "mine", model: "default", adapter: null, debounceMs: 10 });
  const trusted = scopedSettings((key) => planted[key], true);
  assert.equal(trusted("pythonPath"), "/usr/bin/python3");
  assert.equal(trusted("serverUrl"), "");
  assert.equal(trusted("model"), "./models/pickled");
  assert.equal(trusted("adapter"), "adapters/myrepo");
  assert.equal(trusted("nosuch"), undefined);
});

test("package.json makes pythonPath, serverUrl and token machine settings and limits untrusted workspaces", () => {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const manifest = require("../../package.json");
  const properties = manifest.contributes.configuration.properties;
  for (const key of MACHINE_SETTINGS) {
    assert.equal(properties[`repocomplete.${key}`].scope, "machine", `repocomplete.${key} is machine-scoped`);
  }
  const untrusted = manifest.capabilities.untrustedWorkspaces;
  assert.equal(untrusted.supported, "limited");
  assert.deepEqual(
    [...untrusted.restrictedConfigurations].sort(),
    [...MACHINE_SETTINGS, ...TRUSTED_WORKSPACE_SETTINGS].map((key) => `repocomplete.${key}`).sort(),
  );
});

test("cursorParams names a single plain cursor, and nothing for a selection or several cursors", () => {
  const uri = "file:///src/app.py";
  assert.deepEqual(cursorParams(uri, [{ line: 3, character: 8, empty: true }]), {
    textDocument: { uri },
    position: { line: 3, character: 8 },
  });
  assert.equal(cursorParams(uri, [{ line: 3, character: 8, empty: false }]), undefined);
  assert.equal(cursorParams(uri, [{ line: 3, character: 8, empty: true }, { line: 5, character: 0, empty: true }]), undefined);
  assert.equal(cursorParams(uri, []), undefined);
});
