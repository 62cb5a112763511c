// The rlm-lsp extension: starts `rlm-lsp serve` with vscode-languageclient and puts its commands
// (docs/protocol.md) behind VS Code UI: input boxes, Markdown previews of answers with links to
// verified citations, the refactor preview for planned edits, a trajectory view, a status bar
// item, progress notifications with Cancel, settings and an API key in secret storage.
//
// Command ids. The server's executeCommandProvider lists rlm.ask, rlm.explain, rlm.planRefactor,
// rlm.cancel and rlm.status; vscode-languageclient registers each as a VS Code command that
// forwards to the server (code actions from the server run them). The extension's own commands
// therefore have other ids (rlm.askCodebase, rlm.explainSymbol, rlm.planRefactorPreview, ...),
// and the `executeCommand` middleware routes the forwarded server commands into the same UI, so
// "Explain `x` with RLM" from a code action shows its answer instead of dropping it.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as vscode from 'vscode';
import {
  DidChangeConfigurationNotification,
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  RevealOutputChannelOn,
  ServerOptions,
  State,
  WorkDoneProgress,
  WorkspaceEdit as LspWorkspaceEdit,
} from 'vscode-languageclient/node';
import * as pure from './pure';
import type { RunResult } from './pure';

const SECRET = 'rlm.apiKey';
const SCHEME = 'rlm';
const RequestCancelled = -32800;

/** Read-only Markdown documents (answers, plans, status) under the `rlm:` scheme. */
class Documents implements vscode.TextDocumentContentProvider {
  private texts = new Map<string, string>();
  private emitter = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.emitter.event;

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.path) ?? '';
  }

  set(name: string, text: string): vscode.Uri {
    const uri = vscode.Uri.from({ scheme: SCHEME, path: `/${name.replace(/[\\/:*?"<>|#]/g, '_')}.md` });
    this.texts.set(uri.path, text);
    this.emitter.fire(uri);
    return uri;
  }
}

interface Run {
  label: string;
  id?: string;
  turn?: { turn: number; max: number; tokens?: number; cost?: string };
  /** The server sent the progress `begin`: the run is registered and set up. */
  begun?: boolean;
  cts: vscode.CancellationTokenSource;
}

type RunOutcome = { result: RunResult } | { cancelled: true } | { error: string };

class Rlm implements vscode.Disposable {
  private client?: LanguageClient;
  private starting?: Promise<LanguageClient | undefined>;
  private serverPath = '';
  private startError?: string;
  private lastError?: string;
  private lastRun?: RunResult;
  private runs = new Set<Run>();
  private history: { title: string; result: RunResult }[] = [];
  private seq = 0;
  private readonly docs = new Documents();
  private readonly status: vscode.StatusBarItem;
  private readonly output: vscode.OutputChannel;
  private trajectoryPanel?: vscode.WebviewPanel;
  private disposables: vscode.Disposable[] = [];
  /** Set while the extension stops the client itself (a stop then is no error). */
  private stopping = false;

  constructor(private readonly ctx: vscode.ExtensionContext) {
    this.output = vscode.window.createOutputChannel('rlm-lsp');
    this.status = vscode.window.createStatusBarItem('rlm-lsp.status', vscode.StatusBarAlignment.Left, 0);
    this.status.name = 'rlm-lsp';
    this.status.command = 'rlm.showStatus';
    this.updateStatus();
    this.status.show();
    const cmd = (id: string, f: (...args: any[]) => unknown) =>
      this.disposables.push(vscode.commands.registerCommand(id, f));
    cmd('rlm.askCodebase', (q?: string) => this.ask(q));
    cmd('rlm.explainSymbol', () => this.explainAtCursor());
    cmd('rlm.planRefactorPreview', (instruction?: string) => this.planRefactor(instruction));
    cmd('rlm.cancelRun', () => this.cancel());
    cmd('rlm.showStatus', () => this.showStatus());
    cmd('rlm.showTrajectory', () => this.showTrajectory());
    cmd('rlm.restartServer', () => this.restart());
    cmd('rlm.setApiKey', () => this.setApiKey());
    cmd('rlm.clearApiKey', () => this.clearApiKey());
    this.disposables.push(
      this.output,
      this.status,
      vscode.workspace.registerTextDocumentContentProvider(SCHEME, this.docs),
      vscode.workspace.onDidChangeConfiguration((e) => this.configChanged(e)),
      ctx.secrets.onDidChange((e) => {
        if (e.key === SECRET) void this.restart();
      }),
    );
  }

  dispose(): void {
    void this.shutdown();
  }

  /** Cancels the runs, stops the server (waiting up to 2 s for its shutdown), drops the UI. */
  async shutdown(): Promise<void> {
    for (const r of this.runs) r.cts.cancel();
    const client = this.client;
    this.client = undefined;
    this.stopping = true;
    this.trajectoryPanel?.dispose();
    await client?.dispose(2000).catch(() => undefined);
    for (const d of this.disposables.splice(0)) d.dispose();
  }

  // ---- the server process ----

  private config(): vscode.WorkspaceConfiguration {
    return vscode.workspace.getConfiguration('rlm');
  }

  private folder(): string | undefined {
    return vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  }

  /** `rlm.server.path`, else `rlm-lsp` on PATH; an error that says what to do otherwise. */
  private resolveServerPath(): { path: string } | { error: string } {
    const configured = (this.config().get<string>('server.path') ?? '').trim();
    const executable = (p: string) => {
      try {
        fs.accessSync(p, fs.constants.X_OK);
        return fs.statSync(p).isFile();
      } catch {
        return false;
      }
    };
    if (configured !== '') {
      let p = configured.replace(/^~(?=$|\/)/, os.homedir()).replace(/\$\{workspaceFolder\}/g, this.folder() ?? '');
      if (!path.isAbsolute(p) && this.folder()) p = path.join(this.folder()!, p);
      if (executable(p)) return { path: p };
      return {
        error: `rlm-lsp: rlm.server.path is "${configured}", but there is no executable file at ${p}. Point it at the rlm-lsp binary, or clear it to use rlm-lsp from PATH.`,
      };
    }
    for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
      if (dir && executable(path.join(dir, 'rlm-lsp'))) return { path: path.join(dir, 'rlm-lsp') };
    }
    return {
      error:
        'rlm-lsp: the server binary was not found. rlm.server.path is empty and there is no rlm-lsp on PATH. ' +
        'Build it (cargo build --release -p rlm-lsp, or scripts/setup.sh in the rlm-lsp repository), then set ' +
        'rlm.server.path to the binary or put it on PATH, and run "RLM: Restart Server".',
    };
  }

  /** The running client, starting it first when needed; undefined (with a message) on failure. */
  async ready(): Promise<LanguageClient | undefined> {
    const current = this.client;
    if (current?.state === State.Running) return current;
    if (current?.state === State.Starting && !this.starting) {
      // The client restarting the server by itself after a crash.
      try {
        await current.start();
        if ((current.state as State) === State.Running) return current;
      } catch {
        // a fresh client below
      }
    }
    if (!this.starting) {
      this.starting = this.start().finally(() => (this.starting = undefined));
    }
    const c = await this.starting;
    if (!c && this.startError) {
      void vscode.window.showErrorMessage(this.startError, 'Open Settings', 'Show Log').then((pick) => {
        if (pick === 'Open Settings') void vscode.commands.executeCommand('workbench.action.openSettings', 'rlm.server.path');
        if (pick === 'Show Log') this.output.show(true);
      });
    }
    return c;
  }

  private async start(): Promise<LanguageClient | undefined> {
    if (!this.folder()) {
      this.startError = 'rlm-lsp: open a folder first; the server answers questions about the workspace.';
      return undefined;
    }
    const resolved = this.resolveServerPath();
    if ('error' in resolved) {
      this.fail(resolved.error);
      return undefined;
    }
    this.serverPath = resolved.path;
    const old = this.client;
    if (old) {
      // A client that stopped (the server crashed too often): replaced by a fresh one.
      this.client = undefined;
      this.stopping = true;
      await old.dispose(1000).catch(() => undefined);
      this.stopping = false;
    }
    const key = await this.ctx.secrets.get(SECRET);
    const extra = this.config().get<Record<string, string>>('server.env') ?? {};
    const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
    // The key travels only in the server's environment; the server is told the variable's name.
    if (key) env[pure.SECRET_KEY_ENV] = key;
    else delete env[pure.SECRET_KEY_ENV];
    const serverOptions: ServerOptions = {
      command: resolved.path,
      args: ['serve'], // stdio; no `transport`, which would append --stdio (serve takes no flags)
      options: { env, cwd: this.folder() },
    };
    const get = (k: string) => this.config().get(k);
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: 'file' }],
      initializationOptions: pure.serverOptions(get, { secretKeyEnv: key ? pure.SECRET_KEY_ENV : undefined }),
      outputChannel: this.output,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      middleware: {
        executeCommand: (command, args, next) => this.fromServerCommand(command, args, next),
      },
      initializationFailedHandler: (e) => {
        this.fail(`rlm-lsp: the server failed to initialize: ${errorText(e)}`);
        return false;
      },
    };
    const client = new LanguageClient('rlm', 'rlm-lsp', serverOptions, clientOptions);
    client.onDidChangeState((e) => {
      if (e.newState === State.Stopped && this.client === client && !this.stopping) {
        this.lastError = 'the server stopped; run "RLM: Restart Server"';
        this.updateStatus();
      }
    });
    this.client = client;
    this.output.appendLine(`[rlm] starting ${resolved.path} serve in ${this.folder()}`);
    try {
      await client.start();
    } catch (e) {
      this.fail(`rlm-lsp: could not start ${resolved.path}: ${errorText(e)}`);
      this.client = undefined;
      void client.dispose(1000).catch(() => undefined);
      return undefined;
    }
    this.startError = undefined;
    this.lastError = undefined;
    this.updateStatus();
    return client;
  }

  async restart(): Promise<void> {
    for (const r of this.runs) r.cts.cancel();
    const old = this.client;
    this.client = undefined;
    if (old) {
      this.stopping = true;
      try {
        await old.dispose(3000);
      } catch (e) {
        this.output.appendLine(`[rlm] stopping the server: ${errorText(e)}`);
      } finally {
        this.stopping = false;
      }
    }
    this.startError = undefined;
    this.lastError = undefined;
    this.updateStatus();
    if (await this.ready()) void vscode.window.showInformationMessage('rlm-lsp: server restarted');
  }

  private fail(message: string): void {
    this.startError = message;
    this.lastError = message;
    this.output.appendLine(`[rlm] ${message}`);
    this.updateStatus();
  }

  private async configChanged(e: vscode.ConfigurationChangeEvent): Promise<void> {
    if (!e.affectsConfiguration('rlm')) return;
    if (e.affectsConfiguration('rlm.server') || e.affectsConfiguration('rlm.unsafeNoSandbox')) {
      if (this.client || this.startError) await this.restart();
      return;
    }
    if (e.affectsConfiguration('rlm.trace')) return; // the client follows rlm.trace.server itself
    const client = this.client;
    if (client?.state !== State.Running) return;
    const key = await this.ctx.secrets.get(SECRET);
    const settings = pure.serverOptions((k) => this.config().get(k), {
      forChange: true,
      secretKeyEnv: key ? pure.SECRET_KEY_ENV : undefined,
    });
    await client.sendNotification(DidChangeConfigurationNotification.type, { settings });
  }

  private async setApiKey(): Promise<void> {
    const key = await vscode.window.showInputBox({
      title: 'RLM: Set API Key',
      prompt:
        'API key of the model server. Kept in VS Code\'s secret storage and handed to rlm-lsp in an environment variable of its process; never written to settings or logs.',
      password: true,
      ignoreFocusOut: true,
    });
    if (key === undefined) return;
    if (key.trim() === '') {
      await this.clearApiKey();
      return;
    }
    await this.ctx.secrets.store(SECRET, key.trim()); // onDidChange restarts the server
    void vscode.window.showInformationMessage('rlm-lsp: API key stored; the server restarts with it.');
  }

  private async clearApiKey(): Promise<void> {
    await this.ctx.secrets.delete(SECRET);
    void vscode.window.showInformationMessage('rlm-lsp: API key removed.');
  }

  // ---- runs ----

  /**
   * Runs one server command with a progress notification that can be cancelled (the request's
   * cancellation token: the server gets `$/cancelRequest` and stops the run) and its own
   * work-done token, whose reports feed the notification and the status bar.
   */
  private async run(command: string, arg: Record<string, unknown>, label: string): Promise<RunOutcome> {
    const client = await this.ready();
    if (!client) return { error: this.startError ?? 'the server is not running' };
    // Our own run id (rlm.ask, rlm.explain and rlm.planRefactor take one), so rlm.cancel can
    // name the run even before the server's progress `begin` arrives.
    const seq = ++this.seq;
    const id = typeof arg.id === 'string' ? arg.id : `vscode-${seq}`;
    arg = { ...arg, id };
    const run: Run = { label, id, cts: new vscode.CancellationTokenSource() };
    this.runs.add(run);
    this.updateStatus();
    const workDoneToken = `rlm-vscode/${seq}`;
    try {
      const result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `RLM: ${label}`, cancellable: true },
        async (progress, token) => {
          token.onCancellationRequested(() => run.cts.cancel());
          let done = 0;
          const sub = client.onProgress(WorkDoneProgress.type, workDoneToken, (v) => {
            if (v.kind === 'begin') {
              run.id = pure.parseRunId(v.message) ?? run.id;
              run.begun = true;
              this.updateStatus();
            } else if (v.kind === 'report') {
              run.turn = pure.parseTurn(v.message) ?? run.turn;
              const pct = v.percentage ?? done;
              progress.report({ message: v.message, increment: Math.max(0, pct - done) });
              done = Math.max(done, pct);
              this.updateStatus();
            }
          });
          try {
            return (await client.sendRequest(
              ExecuteCommandRequest.type,
              { command, arguments: [arg], workDoneToken },
              run.cts.token,
            )) as RunResult;
          } finally {
            sub.dispose();
          }
        },
      );
      if (!result || typeof result !== 'object') {
        // A cancelled request may resolve to nothing instead of failing.
        if (run.cts.token.isCancellationRequested) return this.cancelled(label);
        return this.failed(label, 'the server returned no result');
      }
      this.lastError = undefined;
      this.lastRun = result;
      return { result };
    } catch (e) {
      if (run.cts.token.isCancellationRequested || (e as { code?: number })?.code === RequestCancelled) {
        return this.cancelled(label);
      }
      return this.failed(label, errorText(e));
    } finally {
      this.runs.delete(run);
      run.cts.dispose();
      this.updateStatus();
    }
  }

  private cancelled(label: string): RunOutcome {
    this.output.appendLine(`[rlm] ${label}: cancelled`);
    void vscode.window.showInformationMessage(`RLM: ${label}: cancelled`);
    return { cancelled: true };
  }

  private failed(label: string, message: string): RunOutcome {
    this.lastError = `${label}: ${message}`;
    this.output.appendLine(`[rlm] ${label} failed: ${message}`);
    void vscode.window.showErrorMessage(`RLM: ${label} failed: ${message}`);
    return { error: message };
  }

  private async ask(question?: string): Promise<void> {
    const q =
      typeof question === 'string' && question.trim() !== ''
        ? question
        : await vscode.window.showInputBox({
            title: 'RLM: Ask the Codebase',
            prompt: 'A question about the whole workspace',
            placeHolder: 'Where are retries configured?',
            ignoreFocusOut: true,
          });
    if (!q || q.trim() === '') return;
    const out = await this.run('rlm.ask', { question: q }, `Ask: ${clip(q, 60)}`);
    if ('result' in out) await this.showAnswer(q, out.result);
  }

  private async explainAtCursor(): Promise<void> {
    const ed = vscode.window.activeTextEditor;
    if (!ed || ed.document.uri.scheme !== 'file') {
      void vscode.window.showWarningMessage('RLM: open a file of the workspace and put the cursor on a symbol.');
      return;
    }
    const client = await this.ready();
    if (!client) return;
    const pos = ed.selection.active;
    const word = ed.document.getText(ed.document.getWordRangeAtPosition(pos)) || 'symbol';
    await this.explain(
      {
        uri: client.code2ProtocolConverter.asUri(ed.document.uri),
        position: client.code2ProtocolConverter.asPosition(pos),
      },
      word,
    );
  }

  private async explain(arg: Record<string, unknown>, word?: string): Promise<void> {
    const out = await this.run('rlm.explain', arg, `Explain ${word ?? 'symbol'}`);
    if ('result' in out) await this.showAnswer(`Explain \`${out.result.symbol ?? word}\``, out.result);
  }

  private async planRefactor(instruction?: string): Promise<void> {
    const text =
      typeof instruction === 'string' && instruction.trim() !== ''
        ? instruction
        : await vscode.window.showInputBox({
            title: 'RLM: Plan Refactor',
            prompt: 'What should change? The plan and its checked edits open in the refactor preview.',
            placeHolder: 'Rename alpha to first everywhere',
            ignoreFocusOut: true,
          });
    if (!text || text.trim() === '') return;
    const arg: Record<string, unknown> = { instruction: text };
    const ed = vscode.window.activeTextEditor;
    const client = await this.ready();
    if (!client) return;
    if (ed && ed.document.uri.scheme === 'file') {
      arg.uri = client.code2ProtocolConverter.asUri(ed.document.uri);
      if (!ed.selection.isEmpty) arg.range = client.code2ProtocolConverter.asRange(ed.selection);
    }
    await this.refactor(arg);
  }

  /** Shows the plan, then offers its edit through the refactor preview, file by file. */
  private async refactor(arg: Record<string, unknown>): Promise<void> {
    const instruction = String(arg.instruction ?? '');
    const out = await this.run('rlm.planRefactor', { ...arg, apply: false }, `Plan refactor: ${clip(instruction, 50)}`);
    if (!('result' in out)) return;
    const r = out.result;
    await this.showAnswer(`Refactor plan: ${instruction}`, r);
    const client = this.client;
    if (!client || !r.edit) return;
    const converted = await client.protocol2CodeConverter.asWorkspaceEdit(r.edit as LspWorkspaceEdit);
    if (!converted) return;
    const edit = new vscode.WorkspaceEdit();
    let count = 0;
    for (const [uri, edits] of converted.entries()) {
      for (const e of edits) {
        edit.replace(uri, e.range, e.newText, {
          needsConfirmation: true,
          label: 'rlm-lsp refactor',
          description: vscode.workspace.asRelativePath(uri),
        });
        count++;
      }
    }
    if (count === 0) {
      void vscode.window.showInformationMessage('RLM: the plan has no edit that passed the checks.');
      return;
    }
    if (r.check && !r.check.passed) {
      const go = await vscode.window.showWarningMessage(
        `RLM: the check \`${r.check.command}\` fails with this plan applied (see the plan). Preview the edits anyway?`,
        'Preview',
        'Discard',
      );
      if (go !== 'Preview') return;
    }
    const applied = await vscode.workspace.applyEdit(edit, { isRefactoring: true });
    void vscode.window.showInformationMessage(
      applied ? `RLM: refactor applied (${count} edits).` : 'RLM: refactor not applied.',
    );
  }

  /** The server's own commands, as run by code actions: the same UI as the extension's. */
  private async fromServerCommand(
    command: string,
    args: any[],
    next: (command: string, args: any[]) => vscode.ProviderResult<unknown>,
  ): Promise<unknown> {
    const a = (args?.[0] ?? {}) as Record<string, unknown>;
    switch (command) {
      case 'rlm.ask':
        return this.ask(typeof a.question === 'string' ? a.question : undefined);
      case 'rlm.explain':
        return this.explain(a);
      case 'rlm.planRefactor':
        return this.refactor(a);
      default:
        return next(command, args);
    }
  }

  private async cancel(): Promise<void> {
    const runs = [...this.runs];
    if (runs.length === 0) {
      void vscode.window.showInformationMessage('RLM: no run in flight.');
      return;
    }
    let chosen = runs;
    if (runs.length > 1) {
      const pick = await vscode.window.showQuickPick(
        [{ label: 'All runs', run: undefined as Run | undefined }, ...runs.map((r) => ({ label: r.label, description: r.id, run: r }))],
        { title: 'RLM: Cancel Run' },
      );
      if (!pick) return;
      chosen = pick.run ? [pick.run] : runs;
    }
    for (const r of chosen) {
      r.cts.cancel(); // $/cancelRequest for its executeCommand request
      if (r.id && this.client?.state === State.Running) {
        // Belt and braces: the same run by its id.
        void this.client
          .sendRequest(ExecuteCommandRequest.type, { command: 'rlm.cancel', arguments: [{ id: r.id }] })
          .then(undefined, () => undefined);
      }
    }
  }

  // ---- views ----

  private async showMarkdown(name: string, markdown: string): Promise<void> {
    const uri = this.docs.set(name, markdown);
    try {
      await vscode.commands.executeCommand('markdown.showPreview', uri);
    } catch {
      // Without the built-in Markdown extension: the text itself.
      const doc = await vscode.workspace.openTextDocument(uri);
      await vscode.window.showTextDocument(doc, { preview: false });
    }
  }

  /**
   * The answer as a Markdown file in the extension's storage, shown in the Markdown preview: a
   * real file, so that its relative links to verified citations open the cited file at the line
   * (the preview refuses `file:` links and cannot resolve links of a virtual document).
   */
  private async showAnswer(title: string, r: RunResult): Promise<void> {
    this.history.unshift({ title, result: r });
    this.history.length = Math.min(this.history.length, 20);
    const root = path.join((this.ctx.storageUri ?? this.ctx.globalStorageUri).fsPath, 'answers');
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
    const dir = path.join(root, `${stamp}-${r.id.replace(/[^\w.-]/g, '_')}`);
    const name = clip(title.replace(/`/g, ''), 60).replace(/[^\w .,()'-]+/g, '_').trim() || 'answer';
    const file = path.join(dir, `${name}.md`);
    const markdown = pure.answerMarkdown(title, r, pure.relativeLinks(dir, path.relative));
    try {
      await fs.promises.mkdir(dir, { recursive: true });
      await fs.promises.writeFile(file, markdown);
      await pruneAnswers(root, 50);
      await vscode.commands.executeCommand('markdown.showPreview', vscode.Uri.file(file));
    } catch (e) {
      this.output.appendLine(`[rlm] could not write ${file}: ${errorText(e)}; showing the answer without links`);
      await this.showMarkdown(`${clip(title, 60)} (${r.id})`, markdown);
    }
  }

  private async showStatus(): Promise<void> {
    const client = await this.ready();
    const state = this.runs.size > 0 ? `running ${this.runs.size}` : this.lastError ? `error: ${this.lastError}` : 'idle';
    if (!client) {
      await this.showMarkdown('rlm-lsp status', `# rlm-lsp status\n\n- state: ${state}\n- ${this.startError ?? 'not running'}\n`);
      return;
    }
    try {
      const status = (await client.sendRequest(ExecuteCommandRequest.type, {
        command: 'rlm.status',
        arguments: [],
      })) as Record<string, unknown>;
      await this.showMarkdown('rlm-lsp status', pure.statusMarkdown(status, { serverPath: this.serverPath, state }));
    } catch (e) {
      void vscode.window.showErrorMessage(`RLM: status failed: ${errorText(e)}`);
    }
  }

  private async showTrajectory(): Promise<void> {
    if (this.history.length === 0) {
      void vscode.window.showInformationMessage('RLM: no run yet; ask a question first.');
      return;
    }
    let entry = this.history[0];
    if (this.history.length > 1) {
      const pick = await vscode.window.showQuickPick(
        this.history.map((h) => ({ label: h.title, description: pure.runSummary(h.result).replace(/`/g, ''), entry: h })),
        { title: 'RLM: Show Trajectory', placeHolder: 'Which run?' },
      );
      if (!pick) return;
      entry = pick.entry;
    }
    const panel =
      this.trajectoryPanel ??
      vscode.window.createWebviewPanel('rlm.trajectory', 'RLM Trajectory', vscode.ViewColumn.Active, {
        enableScripts: false,
        enableFindWidget: true,
        retainContextWhenHidden: false,
      });
    if (!this.trajectoryPanel) {
      this.trajectoryPanel = panel;
      panel.onDidDispose(() => (this.trajectoryPanel = undefined));
    }
    panel.title = `RLM Trajectory: ${clip(entry.title, 40)}`;
    panel.webview.html = trajectoryPage(panel.webview, entry.title, entry.result);
    panel.reveal();
  }

  private updateStatus(): void {
    const s = this.status;
    if (this.runs.size > 0) {
      const runs = [...this.runs];
      const r = runs[runs.length - 1];
      const spent = r.turn?.cost ? ` ${r.turn.cost}` : '';
      const where = r.turn ? `turn ${r.turn.turn}/${r.turn.max}${spent}` : r.begun ? 'asking the model' : 'starting';
      const more = runs.length > 1 ? ` (+${runs.length - 1})` : '';
      s.text = `$(sync~spin) RLM: ${where}${more}`;
      s.tooltip = `rlm-lsp: running\n${runs.map((x) => `${x.label}${x.id ? ` (${x.id})` : ''}`).join('\n')}\nClick for the server status; "RLM: Cancel Run" stops a run.`;
      s.accessibilityInformation = { label: `rlm-lsp: running, ${where}` };
      s.backgroundColor = undefined;
    } else if (this.lastError) {
      s.text = '$(error) RLM';
      s.tooltip = `rlm-lsp: error\n${this.lastError}\nClick for the server status.`;
      s.accessibilityInformation = { label: 'rlm-lsp: error' };
      s.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
    } else {
      const last = this.lastRun;
      const cost = last ? ` · last run ${pure.formatCost(pure.totals(last.usage).cost)}` : '';
      s.text = `$(hubot) RLM${last ? ` ${pure.formatCost(pure.totals(last.usage).cost)}` : ''}`;
      s.tooltip = `rlm-lsp: idle${cost}\nClick for the server status.`;
      s.accessibilityInformation = { label: 'rlm-lsp: idle' };
      s.backgroundColor = undefined;
    }
  }
}

function trajectoryPage(webview: vscode.Webview, title: string, r: RunResult): string {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src ${webview.cspSource} 'unsafe-inline';">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>${pure.escapeHtml(title)}</title>
<style>
body { font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); color: var(--vscode-foreground); }
h1 { font-size: 1.3em; }
.summary, .meta { color: var(--vscode-descriptionForeground); }
.meta { margin-left: 0.6em; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.6em 0; }
td, th { border: 1px solid var(--vscode-panel-border); padding: 2px 8px; text-align: left; }
ul.tree, ul.tree ul { list-style: none; padding-left: 1.2em; border-left: 1px solid var(--vscode-tree-indentGuidesStroke, #888); }
li { margin: 2px 0; }
summary { cursor: pointer; }
pre { background: var(--vscode-textCodeBlock-background); padding: 6px; white-space: pre-wrap; word-break: break-word; max-height: 30em; overflow: auto; }
li.turn > details > summary { font-weight: bold; }
li.sub > details > summary::before { content: "↳ "; }
</style></head>
<body>${pure.trajectoryHtml(title, r)}</body></html>`;
}

/** Keeps the newest `keep` answers (one directory each, named by time). */
async function pruneAnswers(root: string, keep: number): Promise<void> {
  const names = (await fs.promises.readdir(root)).sort();
  for (const n of names.slice(0, Math.max(0, names.length - keep))) {
    await fs.promises.rm(path.join(root, n), { recursive: true, force: true }).catch(() => undefined);
  }
}

function clip(s: string, n: number): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > n ? `${t.slice(0, n - 1)}…` : t;
}

function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (e && typeof e === 'object' && 'message' in e) return String((e as { message: unknown }).message);
  return String(e);
}

let rlm: Rlm | undefined;

export async function activate(ctx: vscode.ExtensionContext): Promise<void> {
  rlm = new Rlm(ctx);
  ctx.subscriptions.push(rlm);
  if (vscode.workspace.workspaceFolders?.length) {
    // Start at once: the server walks and indexes the workspace in the background, so hover and
    // the first question are quick. A failure is shown by the status bar and on first use.
    void rlm.ready();
  }
}

export async function deactivate(): Promise<void> {
  const r = rlm;
  rlm = undefined;
  await r?.shutdown();
}
