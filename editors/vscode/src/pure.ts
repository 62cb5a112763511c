// The editor-free part of the extension: settings to initializationOptions, answers to
// Markdown, trajectories to HTML, progress messages to status. Unit-tested under plain node
// (test/unit.test.mjs against dist/pure.js); nothing here imports `vscode`.

/** The name of the server-process variable that carries a key from VS Code's secret storage. */
export const SECRET_KEY_ENV = 'RLM_VSCODE_API_KEY';

/** Reads one setting of the `rlm` section (`get('baseUrl')`). */
export type SettingGetter = (key: string) => unknown;

type Kind = 'string' | 'int' | 'number' | 'bool' | 'paths';

/**
 * Every setting that maps to an initializationOptions key, with its kind. `nullable`: the
 * server accepts `null` for "not set" (so clearing the setting resets the server's value);
 * the others are sent only when set.
 */
export const OPTION_SETTINGS: { setting: string; key: string; kind: Kind; nullable: boolean }[] = [
  { setting: 'baseUrl', key: 'baseUrl', kind: 'string', nullable: true },
  { setting: 'model', key: 'model', kind: 'string', nullable: true },
  { setting: 'subBaseUrl', key: 'subBaseUrl', kind: 'string', nullable: true },
  { setting: 'subModel', key: 'subModel', kind: 'string', nullable: true },
  { setting: 'childBaseUrl', key: 'childBaseUrl', kind: 'string', nullable: true },
  { setting: 'childModel', key: 'childModel', kind: 'string', nullable: true },
  { setting: 'apiKeyEnv', key: 'apiKeyEnv', kind: 'string', nullable: true },
  { setting: 'subApiKeyEnv', key: 'subApiKeyEnv', kind: 'string', nullable: true },
  { setting: 'childApiKeyEnv', key: 'childApiKeyEnv', kind: 'string', nullable: true },
  { setting: 'allowInsecureHttp', key: 'allowInsecureHttp', kind: 'bool', nullable: false },
  { setting: 'backend', key: 'backend', kind: 'string', nullable: true },
  { setting: 'responseCache', key: 'responseCache', kind: 'string', nullable: true },
  { setting: 'concurrency', key: 'concurrency', kind: 'int', nullable: true },
  { setting: 'timeoutSecs', key: 'timeoutSecs', kind: 'int', nullable: false },
  { setting: 'maxRetries', key: 'maxRetries', kind: 'int', nullable: false },
  { setting: 'maxIterations', key: 'maxIterations', kind: 'int', nullable: false },
  { setting: 'maxDepth', key: 'maxDepth', kind: 'int', nullable: false },
  { setting: 'budget.maxSubCalls', key: 'maxSubCalls', kind: 'int', nullable: true },
  { setting: 'budget.maxChildRuns', key: 'maxChildRuns', kind: 'int', nullable: true },
  { setting: 'budget.maxTokens', key: 'maxTokens', kind: 'int', nullable: true },
  { setting: 'budget.maxCost', key: 'maxCost', kind: 'number', nullable: true },
  { setting: 'budget.maxWallSecs', key: 'maxWallSecs', kind: 'int', nullable: true },
  { setting: 'cellTimeoutSecs', key: 'cellTimeoutSecs', kind: 'int', nullable: false },
  { setting: 'cellWallSecs', key: 'cellWallSecs', kind: 'int', nullable: false },
  { setting: 'unsafeNoSandbox', key: 'unsafeNoSandbox', kind: 'bool', nullable: false },
  { setting: 'extraRoots', key: 'extraRoots', kind: 'paths', nullable: false },
];

function valueOf(kind: Kind, raw: unknown): unknown {
  switch (kind) {
    case 'string':
      return typeof raw === 'string' && raw.trim() !== '' ? raw.trim() : undefined;
    case 'int':
      return typeof raw === 'number' && Number.isInteger(raw) && raw >= 0 ? raw : undefined;
    case 'number':
      return typeof raw === 'number' && Number.isFinite(raw) && raw >= 0 ? raw : undefined;
    case 'bool':
      return raw === true ? true : undefined;
    case 'paths':
      return Array.isArray(raw) && raw.length > 0
        ? raw.filter((p): p is string => typeof p === 'string' && p.trim() !== '')
        : undefined;
  }
}

/**
 * The server's settings object from the `rlm` configuration section. `forChange`: for
 * `workspace/didChangeConfiguration`, where the server overlays the object on its current
 * settings, so a cleared nullable setting is sent as `null`. `secretKeyEnv`: the variable name
 * that holds a key from secret storage (it wins over `rlm.apiKeyEnv`).
 */
export function serverOptions(
  get: SettingGetter,
  opts: { forChange?: boolean; secretKeyEnv?: string } = {},
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const s of OPTION_SETTINGS) {
    const v = valueOf(s.kind, get(s.setting));
    if (v !== undefined) out[s.key] = v;
    else if (opts.forChange && s.nullable) out[s.key] = null;
  }
  if (opts.secretKeyEnv) out.apiKeyEnv = opts.secretKeyEnv;
  return out;
}

/** A citation as the server returns it. */
export interface Citation {
  path: string;
  line: number;
  verified: boolean;
  uri?: string;
}

export interface UsageRow {
  role: string;
  model: string;
  depth: number;
  calls: number;
  prompt_tokens: number;
  completion_tokens: number;
  cached_tokens?: number;
  cost_usd?: number;
  latency_ms?: number;
}

/** The result of rlm.ask / rlm.explain / rlm.planRefactor (docs/protocol.md). */
export interface RunResult {
  id: string;
  answer: string;
  citations?: Citation[];
  usage?: UsageRow[];
  bestEffort?: boolean;
  stopReason?: string;
  iterations?: number;
  subCalls?: number;
  wallMs?: number;
  sandbox?: string;
  trajectory?: TrajectoryEvent[];
  symbol?: string;
  plan?: string;
  edit?: unknown;
  dropped?: { path: string; reason: string }[];
  applied?: { applied: boolean; failureReason?: string } | null;
  /** The user's check command on the plan (`checkCommand`), when one is set. */
  check?: CheckOutcome | null;
  diff?: string;
}

export interface CheckOutcome {
  command: string;
  passed: boolean;
  exitCode?: number | null;
  timedOut?: boolean;
  outputTail?: string;
}

/** The check's verdict as Markdown: a line, and the end of its output when it failed. */
export function checkMarkdown(c: CheckOutcome): string[] {
  if (c.passed) return [`**Check passed**: \`${c.command}\` succeeds with these edits applied.`, ''];
  const why = c.timedOut ? 'ran out of time' : `exit code ${c.exitCode ?? '?'}`;
  return [
    `**Check failed**: \`${c.command}\` (${why}) with these edits applied.`,
    '',
    '```text',
    (c.outputTail ?? '').trimEnd(),
    '```',
    '',
  ];
}

export type TrajectoryEvent = { type: string; [k: string]: unknown };

/** Total tokens and cost of a run's usage rows. */
export function totals(usage: UsageRow[] | undefined): { tokens: number; cost: number; calls: number } {
  let tokens = 0;
  let cost = 0;
  let calls = 0;
  for (const u of usage ?? []) {
    tokens += (u.prompt_tokens ?? 0) + (u.completion_tokens ?? 0);
    cost += u.cost_usd ?? 0;
    calls += u.calls ?? 0;
  }
  return { tokens, cost, calls };
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export function formatCost(usd: number): string {
  if (usd === 0) return '$0';
  if (usd < 0.01) return `$${usd.toFixed(4)}`;
  return `$${usd.toFixed(2)}`;
}

/** Where a citation links to; undefined for no link. */
export type LinkFor = (c: Citation) => string | undefined;

/** The path of a `file:` URI (`file:///a/b%20c.rs` → `/a/b c.rs`). */
export function filePath(uri: string): string | undefined {
  if (!uri.startsWith('file://')) return undefined;
  try {
    return decodeURIComponent(new URL(uri).pathname);
  } catch {
    return undefined;
  }
}

/**
 * Links for a Markdown file in `fromDir`: a relative link to the cited file with a `#L<line>`
 * fragment, which VS Code's Markdown preview opens at that line (it refuses `file:` links).
 * Only verified citations (those with a `uri`) get one.
 */
export function relativeLinks(fromDir: string, relative: (from: string, to: string) => string): LinkFor {
  return (c) => {
    if (!c.verified || !c.uri) return undefined;
    const target = filePath(c.uri);
    if (!target) return undefined;
    const rel = relative(fromDir, target).split(/[\\/]/).map(encodeURIComponent).join('/');
    return `${rel}#L${c.line}`;
  };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The answer with each verified `path:line` made a link to the file at that line, outside code
 * (fenced blocks and inline code spans are left alone). Unverified citations stay plain text.
 */
export function linkCitations(markdown: string, citations: Citation[] | undefined, linkFor: LinkFor): string {
  const verified = (citations ?? []).filter((c) => linkFor(c) !== undefined);
  if (verified.length === 0) return markdown;
  // Longest first, so `src/a.rs:12` is not matched as `a.rs:12` inside it.
  verified.sort((a, b) => `${b.path}:${b.line}`.length - `${a.path}:${a.line}`.length);
  const pattern = new RegExp(
    `(?<![\\w./\\[-])(${verified.map((c) => escapeRegExp(`${c.path}:${c.line}`)).join('|')})(?![\\w\\]])`,
    'g',
  );
  const targets = new Map(verified.map((c) => [`${c.path}:${c.line}`, linkFor(c)!]));
  const linkPlain = (text: string) =>
    text.replace(pattern, (m: string) => `[${m}](${targets.get(m)})`);
  // Split off fenced blocks, then inline code spans; link only the plain text between them.
  return markdown
    .split(/(^```[^\n]*\n[\s\S]*?^```[ \t]*$)/m)
    .map((part, i) =>
      i % 2 === 1 ? part : part.split(/(`[^`\n]*`)/).map((p, j) => (j % 2 === 1 ? p : linkPlain(p))).join(''),
    )
    .join('');
}

/** One line that sums a run up: turns, sub-calls, tokens, cost, time, stop reason. */
export function runSummary(r: RunResult): string {
  const t = totals(r.usage);
  const parts = [
    `run \`${r.id}\``,
    plural(r.iterations ?? 0, 'turn'),
    plural(r.subCalls ?? 0, 'sub-call'),
    `${t.tokens} tokens`,
    formatCost(t.cost),
    `${((r.wallMs ?? 0) / 1000).toFixed(1)} s`,
  ];
  if (r.stopReason && r.stopReason !== 'final') parts.push(`stopped: ${r.stopReason}`);
  return parts.join(' · ');
}

/** The Markdown document shown for a run: title, answer (or plan), citations, summary. */
export function answerMarkdown(title: string, r: RunResult, linkFor: LinkFor): string {
  const lines: string[] = [`# ${title}`, ''];
  if (r.bestEffort) lines.push('> **Partial answer**: the run stopped before the model finished.', '');
  const body = r.plan ?? r.answer ?? '';
  lines.push(linkCitations(body, r.citations, linkFor), '');
  const cites = r.citations ?? [];
  if (cites.length > 0) {
    lines.push('## Citations', '');
    for (const c of cites) {
      const target = linkFor(c);
      lines.push(
        target ? `- [${c.path}:${c.line}](${target})` : `- \`${c.path}:${c.line}\` (not found in the workspace)`,
      );
    }
    lines.push('');
  }
  if (r.check) lines.push(...checkMarkdown(r.check));
  // A plan already lists its dropped edits (the server writes them into it).
  if (r.plan === undefined && r.dropped && r.dropped.length > 0) {
    lines.push('## Edits dropped by the checks', '');
    for (const d of r.dropped) lines.push(`- \`${d.path}\`: ${d.reason}`);
    lines.push('');
  }
  lines.push('---', '', `*${runSummary(r)}. Run **RLM: Show Trajectory** to see every step.*`, '');
  return lines.join('\n');
}

/** What the status bar shows for a progress message (`turn 2 of 20: ...`). */
/** The turn, and the spend so far, of a progress report
 * (`turn n of max: what happened, j sub-calls, t tokens, $c`; see docs/protocol.md). */
export function parseTurn(
  message: string | undefined,
): { turn: number; max: number; tokens?: number; cost?: string } | undefined {
  const m = /^turn (\d+) of (\d+)/.exec(message ?? '');
  if (!m) return undefined;
  const tokens = /, (\d+) tokens/.exec(message ?? '');
  const cost = /, (\$[\d.]+|cost unknown)/.exec(message ?? '');
  return {
    turn: Number(m[1]),
    max: Number(m[2]),
    ...(tokens ? { tokens: Number(tokens[1]) } : {}),
    ...(cost ? { cost: cost[1] } : {}),
  };
}

/** The run id from the progress `begin` message (`run <id>: <question>`). */
export function parseRunId(message: string | undefined): string | undefined {
  const m = /^run (\S+?):/.exec(message ?? '');
  return m ? m[1] : undefined;
}

export function escapeHtml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function clip(s: unknown, n: number): string {
  const t = typeof s === 'string' ? s : JSON.stringify(s ?? '');
  return t.length > n ? `${t.slice(0, n)}…` : t;
}

function usageText(u: unknown): string {
  const x = (u ?? {}) as { prompt_tokens?: number; completion_tokens?: number; cached_tokens?: number };
  if (x.prompt_tokens === undefined) return '';
  const cached = x.cached_tokens ? ` (${x.cached_tokens} cached)` : '';
  return `${x.prompt_tokens} prompt${cached} + ${x.completion_tokens ?? 0} completion tokens`;
}

function ms(v: unknown): string {
  return typeof v === 'number' ? `${(v / 1000).toFixed(2)} s` : '';
}

function meta(...parts: string[]): string {
  const kept = parts.filter((p) => p !== '');
  return kept.length ? ` <span class="meta">${escapeHtml(kept.join(' · '))}</span>` : '';
}

function pre(label: string, text: unknown, open = false): string {
  const t = typeof text === 'string' ? text : '';
  if (t === '') return '';
  return `<details${open ? ' open' : ''}><summary>${escapeHtml(label)}</summary><pre>${escapeHtml(t)}</pre></details>`;
}

/**
 * The body of the trajectory view: the run as a tree. Root turns (iterations) hold the model's
 * reply, its code cells with their output, and the sub-calls and child runs made from that turn.
 */
export function trajectoryHtml(title: string, r: RunResult): string {
  const events = r.trajectory ?? [];
  const t = totals(r.usage);
  const out: string[] = [];
  out.push(`<h1>${escapeHtml(title)}</h1>`);
  out.push(
    `<p class="summary">${escapeHtml(
      `run ${r.id} · ${plural(r.iterations ?? 0, 'turn')} · ${plural(r.subCalls ?? 0, 'sub-call')} · ${t.tokens} tokens · ${formatCost(t.cost)} · ${((r.wallMs ?? 0) / 1000).toFixed(1)} s · stop: ${r.stopReason ?? '?'}`,
    )}</p>`,
  );
  if ((r.usage ?? []).length > 0) {
    out.push('<table><tr><th>role</th><th>model</th><th>depth</th><th>calls</th><th>prompt</th><th>cached</th><th>completion</th><th>cost</th><th>latency</th></tr>');
    for (const u of r.usage ?? []) {
      out.push(
        `<tr><td>${escapeHtml(u.role)}</td><td>${escapeHtml(u.model)}</td><td>${u.depth}</td><td>${u.calls}</td><td>${u.prompt_tokens}</td><td>${u.cached_tokens ?? 0}</td><td>${u.completion_tokens}</td><td>${escapeHtml(formatCost(u.cost_usd ?? 0))}</td><td>${escapeHtml(ms(u.latency_ms))}</td></tr>`,
      );
    }
    out.push('</table>');
  }
  out.push('<ul class="tree">');
  let openTurn: number | undefined;
  const closeTurn = () => {
    if (openTurn !== undefined) out.push('</ul></details></li>');
    openTurn = undefined;
  };
  const turn = (n: unknown) => {
    const it = typeof n === 'number' ? n : 0;
    if (openTurn === it) return;
    closeTurn();
    openTurn = it;
    out.push(`<li class="turn"><details open><summary>Turn ${it}</summary><ul>`);
  };
  for (const e of events) {
    switch (e.type) {
      case 'run_start':
        out.push(
          `<li class="start"><details><summary>Run start${meta(`${e.files} files`, `${e.bytes} bytes`, `root ${e.root_model}`, `sub ${e.sub_model}`, `max ${e.max_iterations} turns`)}</summary><pre>${escapeHtml(String(e.question ?? ''))}</pre></details></li>`,
        );
        break;
      case 'root_message': {
        const role = String(e.role ?? '');
        if (role === 'system') break;
        // Turn 0 is the question itself, before the first model call.
        if (e.iteration === 0) closeTurn();
        else turn(e.iteration);
        const label = e.iteration === 0 ? 'Question' : role === 'assistant' ? 'Root model' : 'To the root model';
        out.push(
          `<li class="msg ${escapeHtml(role)}"><details${role === 'assistant' ? ' open' : ''}><summary>${label}${meta(usageText(e.usage), ms(e.latency_ms))}</summary><pre>${escapeHtml(String(e.content ?? ''))}</pre></details></li>`,
        );
        break;
      }
      case 'code_cell': {
        turn(e.iteration);
        const flags = [
          e.error ? 'raised' : '',
          e.timed_out ? 'timed out' : '',
          e.final_answer !== undefined ? 'FINAL' : '',
          `${e.output_bytes ?? 0} bytes out`,
          ms(e.duration_ms),
        ];
        out.push(
          `<li class="cell"><details open><summary>Code cell ${Number(e.index ?? 0) + 1}${meta(...flags)}</summary><pre class="code">${escapeHtml(String(e.code ?? ''))}</pre>${pre('stdout', e.stdout, true)}${pre('stderr', e.stderr)}${pre('error', e.error, true)}${pre('final answer', e.final_answer)}</details></li>`,
        );
        break;
      }
      case 'sub_call':
        turn(e.iteration);
        out.push(
          `<li class="sub"><details><summary>Sub-call: ${escapeHtml(clip(e.prompt, 80))}${meta(String(e.model ?? ''), usageText(e.usage), ms(e.latency_ms), e.cached ? 'cached' : '', e.error ? 'failed' : '')}</summary>${pre('prompt', e.prompt)}${pre('response', e.response, true)}${pre('error', e.error, true)}</details></li>`,
        );
        break;
      case 'child_run':
        turn(e.iteration);
        out.push(
          `<li class="child"><details><summary>Child run (depth ${e.depth}): ${escapeHtml(clip(e.prompt, 80))}${meta(`${e.iterations} turns`, String(e.stop_reason ?? ''), ms(e.wall_ms))}</summary>${pre('prompt', e.prompt)}${pre('answer', e.answer, true)}${pre('error', e.error, true)}</details></li>`,
        );
        break;
      case 'run_end':
        closeTurn();
        out.push(
          `<li class="end"><details open><summary>Run end${meta(String(e.stop_reason ?? ''), plural(Number(e.iterations ?? 0), 'turn'), plural(Number(e.sub_calls ?? 0), 'sub-call'), ms(e.wall_ms), e.best_effort ? 'partial' : '')}</summary><pre>${escapeHtml(String(e.answer ?? ''))}</pre></details></li>`,
        );
        break;
      default:
        out.push(`<li><pre>${escapeHtml(clip(e, 400))}</pre></li>`);
    }
  }
  closeTurn();
  out.push('</ul>');
  return out.join('\n');
}

/** A Markdown page for rlm.status's result. */
export function statusMarkdown(status: Record<string, unknown>, client: { serverPath: string; state: string }): string {
  const lines = ['# rlm-lsp status', ''];
  lines.push(`- server: \`${client.serverPath}\` (${client.state})`);
  if (status.version) lines.push(`- version: ${status.version}`);
  const snap = status.snapshot as { files?: number; bytes?: number } | undefined;
  if (snap) lines.push(`- snapshot: ${snap.files} files, ${snap.bytes} bytes`);
  const index = status.index as { files?: number; totalFiles?: number; definitions?: number; complete?: boolean } | undefined;
  if (index) {
    lines.push(
      `- index: ${index.files}/${index.totalFiles} files, ${index.definitions} definitions${index.complete ? '' : ' (building)'}`,
    );
  }
  const runs = (status.runsInFlight as string[] | undefined) ?? [];
  lines.push(`- runs in flight: ${runs.length ? runs.map((r) => `\`${r}\``).join(', ') : 'none'}`);
  lines.push('', '```json', JSON.stringify(status, null, 2), '```', '');
  return lines.join('\n');
}
