// The whole VS Code side: start `repocomplete lsp`, forward settings, show its status. No prompt logic here.
import * as vscode from "vscode";
import { LanguageClient, LanguageClientOptions, ServerOptions, TransportKind } from "vscode-languageclient/node";
import {
  CURSOR_NOTIFICATION,
  CURSOR_REST_MS,
  cursorParams,
  initializationOptions,
  needsRestart,
  parseStatus,
  scopedSettings,
  serverCommand,
  statusBarText,
} from "./settings";

let client: LanguageClient | undefined;
let statusItem: vscode.StatusBarItem;
let output: vscode.OutputChannel;

function settings() {
  const config = vscode.workspace.getConfiguration("repocomplete");
  // machine settings from the user's settings only; model/adapter too while the workspace is untrusted
  return scopedSettings((key) => config.inspect(key), vscode.workspace.isTrusted);
}

function sendSettings(): void {
  // our own didChangeConfiguration (not `synchronize`), so the scoping above applies to changes too
  void client?.sendNotification("workspace/didChangeConfiguration", { settings: initializationOptions(settings()) });
}

function showStatus(params: unknown): void {
  const { text, tooltip } = statusBarText(parseStatus(params));
  statusItem.text = text;
  statusItem.tooltip = tooltip;
  statusItem.show();
}

async function startClient(): Promise<void> {
  const { command, args } = serverCommand(settings());
  const serverOptions: ServerOptions = { command, args, transport: TransportKind.stdio };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
    initializationOptions: initializationOptions(settings()),
    outputChannel: output,
  };
  client = new LanguageClient("repocomplete", "repocomplete", serverOptions, clientOptions);
  // inline completion (LSP 3.18) is a proposed feature in vscode-languageclient 9
  client.registerProposedFeatures();
  showStatus({ state: "starting", message: `${command} ${args.join(" ")}` });
  client.onNotification("repocomplete/status", showStatus);
  try {
    await client.start();
  } catch (error) {
    showStatus({ state: "error", message: `could not start ${command}: ${error}` });
  }
}

let cursorTimer: ReturnType<typeof setTimeout> | undefined;

/** Tell the server where the cursor came to rest (it may prepare the prompt there); debounced. */
function cursorMoved(event: vscode.TextEditorSelectionChangeEvent): void {
  clearTimeout(cursorTimer);
  cursorTimer = setTimeout(() => {
    const running = client?.isRunning() ? client : undefined;
    const params = running && cursorParams(
      running.code2ProtocolConverter.asUri(event.textEditor.document.uri),
      event.selections.map((s) => ({ line: s.active.line, character: s.active.character, empty: s.isEmpty })),
    );
    if (running && params) {
      void running.sendNotification(CURSOR_NOTIFICATION, params);
    }
  }, CURSOR_REST_MS);
}

async function restartClient(): Promise<void> {
  const previous = client;
  client = undefined;
  await previous?.stop();
  await startClient();
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel("repocomplete");
  statusItem = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  statusItem.command = "repocomplete.toggle";
  context.subscriptions.push(
    output,
    statusItem,
    vscode.commands.registerCommand("repocomplete.toggle", async () => {
      const config = vscode.workspace.getConfiguration("repocomplete");
      await config.update("enable", !config.get<boolean>("enable", true), vscode.ConfigurationTarget.Global);
    }),
    vscode.commands.registerCommand("repocomplete.indexWorkspace", async () => {
      await client?.sendRequest("workspace/executeCommand", { command: "repocomplete.index", arguments: [] });
    }),
    vscode.commands.registerCommand("repocomplete.showLogs", () => output.show()),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (needsRestart((section) => event.affectsConfiguration(section))) {
        await restartClient();
      } else if (event.affectsConfiguration("repocomplete")) {
        sendSettings();
      }
    }),
    vscode.workspace.onDidGrantWorkspaceTrust(sendSettings),
    vscode.window.onDidChangeTextEditorSelection(cursorMoved),
    { dispose: () => clearTimeout(cursorTimer) },
  );
  await startClient();
}

export async function deactivate(): Promise<void> {
  await client?.stop();
}
