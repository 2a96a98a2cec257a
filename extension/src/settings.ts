// Pure logic of the extension (no `vscode` import), unit-tested with node's test runner.

/** Reads one `repocomplete.*` setting (VS Code: `workspace.getConfiguration("repocomplete").get`). */
export type SettingGetter = (key: string) => unknown;

/** The status the language server reports in its `repocomplete/status` notification. */
export interface ServerStatus {
  state: string;
  message: string;
}

/** Settings the language server understands (camelCase, as `initializationOptions`). */
export const SERVER_SETTINGS = ["serverUrl", "token", "model", "adapter", "enable", "languages", "debounceMs", "maxTokens", "prefetch"] as const;

/** The language server's notification that the cursor landed somewhere (it may process the prompt there ahead of time). */
export const CURSOR_NOTIFICATION = "repocomplete/cursor";

/** Milliseconds the cursor must rest before the server is told where it is (not on every keystroke of a burst). */
export const CURSOR_REST_MS = 150;

/** One editor selection, as VS Code reports it (positions in UTF-16 code units, the LSP default). */
export interface CursorSelection {
  line: number;
  character: number;
  empty: boolean;
}

/**
 * The `repocomplete/cursor` params for an editor's selections, or undefined when there is no single
 * plain cursor (a selection or several cursors: no completion will be asked for there).
 */
export function cursorParams(uri: string, selections: readonly CursorSelection[]): { textDocument: { uri: string }; position: { line: number; character: number } } | undefined {
  if (selections.length !== 1 || !selections[0].empty) {
    return undefined;
  }
  const { line, character } = selections[0];
  return { textDocument: { uri }, position: { line, character } };
}

/**
 * Settings only the user's own settings may set (`"scope": "machine"` in package.json): a
 * repository's `.vscode/settings.json` must not choose the interpreter the extension runs, nor
 * the server (and token) its code is sent to. Enforced here too, for editors that ignore scopes.
 */
export const MACHINE_SETTINGS = ["pythonPath", "serverUrl", "token"] as const;

/** Settings a workspace may set only once trusted: they name files the server loads. */
export const TRUSTED_WORKSPACE_SETTINGS = ["model", "adapter"] as const;

/** What VS Code's `WorkspaceConfiguration.inspect` reports for one setting. */
export interface SettingInspection {
  defaultValue?: unknown;
  globalValue?: unknown;
  workspaceValue?: unknown;
  workspaceFolderValue?: unknown;
}

/**
 * A getter that reads each setting from where it may come from: machine settings (and, in an
 * untrusted workspace, model and adapter) from the user's settings or the default only;
 * everything else from the most specific place that sets it.
 */
export function scopedSettings(inspect: (key: string) => SettingInspection | undefined, trusted: boolean): SettingGetter {
  const userOnly = new Set<string>([...MACHINE_SETTINGS, ...(trusted ? [] : TRUSTED_WORKSPACE_SETTINGS)]);
  return (key: string) => {
    const found = inspect(key);
    if (found === undefined) {
      return undefined;
    }
    if (userOnly.has(key)) {
      return found.globalValue ?? found.defaultValue;
    }
    return found.workspaceFolderValue ?? found.workspaceValue ?? found.globalValue ?? found.defaultValue;
  };
}

/** Settings that change how the server process is started: a change restarts it. */
export const RESTART_SETTINGS = ["pythonPath"] as const;

/** The `initializationOptions` (and `didChangeConfiguration` payload) built from the settings. */
export function initializationOptions(get: SettingGetter): Record<string, unknown> {
  const options: Record<string, unknown> = {};
  for (const key of SERVER_SETTINGS) {
    const value = get(key);
    if (value === undefined || value === null) {
      continue;
    }
    // empty strings mean "not set": the server then uses its defaults (in-process engine, default model)
    options[key] = typeof value === "string" && value.trim() === "" ? null : value;
  }
  return options;
}

/** How to launch the language server: `<python> -m repocomplete lsp`. */
export function serverCommand(get: SettingGetter, env: Record<string, string | undefined> = process.env): { command: string; args: string[] } {
  const configured = get("pythonPath");
  const python = typeof configured === "string" && configured.trim() !== "" ? configured.trim() : env.REPOCOMPLETE_PYTHON || "python3";
  return { command: python, args: ["-m", "repocomplete", "lsp"] };
}

/** Whether a configuration change needs the server process restarted (vs. sent as settings). */
export function needsRestart(affects: (section: string) => boolean): boolean {
  return RESTART_SETTINGS.some((key) => affects(`repocomplete.${key}`));
}

const ICONS: Record<string, string> = {
  ready: "$(check)",
  loading: "$(sync~spin)",
  indexing: "$(sync~spin)",
  error: "$(error)",
  disabled: "$(circle-slash)",
  starting: "$(sync~spin)",
};

/** Text and tooltip of the status-bar item for a server status. */
export function statusBarText(status: ServerStatus): { text: string; tooltip: string } {
  const icon = ICONS[status.state] ?? "$(question)";
  const label = status.state === "ready" ? "repocomplete" : `repocomplete: ${status.state}`;
  return { text: `${icon} ${label}`, tooltip: status.message || status.state };
}

/** Parses a `repocomplete/status` notification's params; unknown shapes become an error status. */
export function parseStatus(params: unknown): ServerStatus {
  if (params && typeof params === "object" && typeof (params as ServerStatus).state === "string") {
    const { state, message } = params as ServerStatus;
    return { state, message: typeof message === "string" ? message : "" };
  }
  return { state: "error", message: "unrecognised status from the language server" };
}
