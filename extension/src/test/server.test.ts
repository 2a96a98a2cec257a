// Integration: drive the real `python -m repocomplete lsp` (fake backend) over vscode-jsonrpc.
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { createMessageConnection, StreamMessageReader, StreamMessageWriter } from "vscode-jsonrpc/node";
import { CURSOR_NOTIFICATION, cursorParams, initializationOptions, parseStatus, serverCommand, statusBarText } from "../settings";

const repoRoot = path.resolve(__dirname, "..", "..", "..");

function python(): string {
  const venv = path.join(repoRoot, ".venv", "bin", "python");
  return process.env.REPOCOMPLETE_PYTHON || (existsSync(venv) ? venv : "python3");
}

test("the extension's launch command and settings drive the real language server", { timeout: 120_000 }, async () => {
  const { command, args } = serverCommand((key) => (key === "pythonPath" ? python() : undefined));
  const child = spawn(command, args, {
    cwd: repoRoot,
    env: { ...process.env, REPOCOMPLETE_BACKEND: "fake", REPOCOMPLETE_CACHE_DIR: mkdtempSync(path.join(tmpdir(), "rc-ext-")) },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const connection = createMessageConnection(new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin));
  const statuses: string[] = [];
  let ready: () => void;
  const readyPromise = new Promise<void>((resolve) => (ready = resolve));
  connection.onNotification("repocomplete/status", (params: unknown) => {
    const status = parseStatus(params);
    statuses.push(statusBarText(status).text);
    if (status.state === "ready") ready();
  });
  connection.listen();

  const settings: Record<string, unknown> = { serverUrl: "", debounceMs: 0, maxTokens: 16, enable: true, languages: { markdown: false } };
  const init: any = await connection.sendRequest("initialize", {
    processId: process.pid,
    rootUri: null,
    capabilities: { textDocument: { inlineCompletion: {} } },
    initializationOptions: initializationOptions((key) => settings[key]),
  });
  assert.ok(init.capabilities.inlineCompletionProvider !== undefined, "inline completion is advertised");
  await connection.sendNotification("initialized", {});
  await readyPromise;
  assert.ok(statuses.includes("$(check) repocomplete"));

  const uri = "file:///project/main.py";
  await connection.sendNotification("textDocument/didOpen", { textDocument: { uri, languageId: "python", version: 1, text: "def f():\n    return " } });
  const result: any = await connection.sendRequest("textDocument/inlineCompletion", {
    textDocument: { uri },
    position: { line: 1, character: 11 },
    context: { triggerKind: 1 },
  });
  assert.equal(result.items.length, 1);
  assert.ok(result.items[0].insertText.length > 0);
  const accepted: any = await connection.sendRequest("workspace/executeCommand", result.items[0].command);
  assert.equal(accepted.type, "select");

  // the cursor lands on a new line: the server starts processing the prompt there (notifications are handled in order)
  await connection.sendNotification("textDocument/didChange", {
    textDocument: { uri, version: 2 },
    contentChanges: [{ text: "def f():\n    return 1\n\n\ndef g():\n    " }],
  });
  await connection.sendNotification(CURSOR_NOTIFICATION, cursorParams(uri, [{ line: 5, character: 4, empty: true }]));
  const stats: any = await connection.sendRequest("repocomplete/debugStats", {});
  assert.equal(stats.prefetches_started, 1);

  // a per-language switch from the settings: no completion in markdown
  await connection.sendNotification("textDocument/didOpen", { textDocument: { uri: "file:///project/README.md", languageId: "markdown", version: 1, text: "# T\n" } });
  const none = await connection.sendRequest("textDocument/inlineCompletion", {
    textDocument: { uri: "file:///project/README.md" },
    position: { line: 1, character: 0 },
    context: { triggerKind: 1 },
  });
  assert.equal(none, null);

  await connection.sendRequest("shutdown");
  await connection.sendNotification("exit");
  assert.equal(await exited, 0);
  connection.dispose();
});
