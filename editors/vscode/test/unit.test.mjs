// The editor-free parts of the extension (src/pure.ts, bundled as dist/pure.js), under node's
// test runner: `npm run bundle && npm run test:unit`.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const pure = require('../dist/pure.js');

const settings = (values) => (key) => values[key];

test('settings map to initializationOptions; empty ones are left out', () => {
  const opts = pure.serverOptions(
    settings({
      baseUrl: ' http://127.0.0.1:8080/v1 ',
      model: '',
      'budget.maxCost': 0.5,
      'budget.maxTokens': null,
      maxIterations: 5,
      unsafeNoSandbox: false,
      extraRoots: [],
      backend: 'openai',
    }),
  );
  assert.deepEqual(opts, { baseUrl: 'http://127.0.0.1:8080/v1', backend: 'openai', maxIterations: 5, maxCost: 0.5 });
});

test('a change sends null for cleared settings the server can reset, and a stored key wins', () => {
  const opts = pure.serverOptions(settings({ apiKeyEnv: 'OPENAI_API_KEY', maxIterations: null }), {
    forChange: true,
    secretKeyEnv: pure.SECRET_KEY_ENV,
  });
  assert.equal(opts.apiKeyEnv, 'RLM_VSCODE_API_KEY');
  assert.equal(opts.baseUrl, null);
  assert.equal(opts.maxCost, null);
  assert.ok(!('maxIterations' in opts), 'the server requires a value for maxIterations');
  assert.ok(!Object.values(opts).includes('sk-secret'));
});

test('every key sent is one the server knows', () => {
  const known = new Set([
    'baseUrl', 'subBaseUrl', 'childBaseUrl', 'model', 'subModel', 'childModel', 'apiKeyEnv', 'backend',
    'subApiKeyEnv', 'childApiKeyEnv', 'allowInsecureHttp', 'maxChildRuns', 'cellWallSecs',
    'concurrency', 'timeoutSecs', 'maxRetries', 'responseCache', 'maxIterations', 'maxDepth', 'maxSubCalls',
    'maxTokens', 'maxWallSecs', 'maxCost', 'cellTimeoutSecs', 'unsafeNoSandbox', 'extraRoots',
  ]);
  for (const s of pure.OPTION_SETTINGS) assert.ok(known.has(s.key), s.key);
});

const cites = [
  { path: 'src/a.rs', line: 12, verified: true, uri: 'file:///w/src/a.rs' },
  { path: 'a.rs', line: 3, verified: true, uri: 'file:///w/a.rs' },
  { path: 'nowhere.rs', line: 3, verified: false },
];
const links = pure.relativeLinks('/store/answers/x', path.posix.relative);

test('verified citations become relative links with a line fragment; others stay text', () => {
  const md = pure.linkCitations('See src/a.rs:12 and a.rs:3, not nowhere.rs:3.', cites, links);
  assert.equal(
    md,
    'See [src/a.rs:12](../../../w/src/a.rs#L12) and [a.rs:3](../../../w/a.rs#L3), not nowhere.rs:3.',
  );
});

test('citations inside code are left alone', () => {
  const md = pure.linkCitations('`a.rs:3` and\n```\na.rs:3\n```\nthen a.rs:3', cites, links);
  assert.equal(md, '`a.rs:3` and\n```\na.rs:3\n```\nthen [a.rs:3](../../../w/a.rs#L3)');
});

test('paths with spaces are encoded', () => {
  const l = pure.relativeLinks('/s', path.posix.relative)({ path: 'my dir/b.rs', line: 1, verified: true, uri: 'file:///w/my%20dir/b.rs' });
  assert.equal(l, '../w/my%20dir/b.rs#L1');
});

test('the answer page lists citations and sums the run up', () => {
  const md = pure.answerMarkdown(
    'Q?',
    {
      id: 'run-1',
      answer: 'It is in a.rs:3.',
      citations: cites.slice(1),
      usage: [{ role: 'root', model: 'm', depth: 0, calls: 2, prompt_tokens: 100, completion_tokens: 20, cost_usd: 0.0012 }],
      iterations: 2,
      subCalls: 1,
      wallMs: 1500,
      stopReason: 'final',
    },
    links,
  );
  assert.match(md, /^# Q\?/);
  assert.match(md, /- \[a\.rs:3\]\(\.\.\/\.\.\/\.\.\/w\/a\.rs#L3\)/);
  assert.match(md, /`nowhere\.rs:3` \(not found in the workspace\)/);
  assert.match(md, /2 turns · 1 sub-call · 120 tokens · \$0\.0012 · 1\.5 s/);
});

test('progress messages give the turn and the run id', () => {
  assert.deepEqual(pure.parseTurn('turn 3 of 20: ran code, 10 bytes of output, 900 tokens'), {
    turn: 3,
    max: 20,
    tokens: 900,
  });
  assert.deepEqual(
    pure.parseTurn('turn 4 of 20: a sub-call returned, 2 sub-calls, 3170 tokens, $0.0037'),
    { turn: 4, max: 20, tokens: 3170, cost: '$0.0037' },
  );
  assert.equal(pure.parseTurn('turn 1 of 5: the root model replied, 10 tokens, cost unknown').cost, 'cost unknown');
  assert.equal(pure.parseTurn('done: 2 turns'), undefined);
  assert.equal(pure.parseRunId('run vscode-4: What is x?'), 'vscode-4');
});

test('the trajectory is a tree of turns, escaped', () => {
  const html = pure.trajectoryHtml('T', {
    id: 'r',
    answer: 'a',
    trajectory: [
      { type: 'run_start', question: 'q<script>', files: 1, bytes: 2, root_model: 'm', sub_model: 's', max_iterations: 3 },
      { type: 'root_message', iteration: 0, role: 'user', content: 'question' },
      { type: 'root_message', iteration: 1, role: 'assistant', content: 'code', usage: { prompt_tokens: 5, completion_tokens: 2 }, latency_ms: 10 },
      { type: 'code_cell', iteration: 1, index: 0, code: 'print(1)', stdout: '1', stderr: '', output_bytes: 1, timed_out: false, duration_ms: 3 },
      { type: 'sub_call', iteration: 1, model: 's', prompt: 'p', response: 'r', usage: { prompt_tokens: 1, completion_tokens: 1 }, latency_ms: 4 },
      { type: 'run_end', answer: 'a', best_effort: false, stop_reason: 'final', iterations: 1, sub_calls: 1, wall_ms: 20 },
    ],
  });
  assert.ok(!html.includes('<script>'));
  assert.ok(html.includes('q&lt;script&gt;'));
  assert.equal((html.match(/<li class="turn">/g) ?? []).length, 1);
  for (const s of ['Question', 'Root model', 'Code cell 1', 'Sub-call: p', 'Run end', '5 prompt + 2 completion tokens']) {
    assert.ok(html.includes(s), s);
  }
});

test('a refactor plan shows the check command and its verdict', () => {
  const base = { id: 'run-1', answer: 'Renamed.', plan: 'Renamed alpha.', stopReason: 'final' };
  const passed = pure.answerMarkdown('Refactor', { ...base, check: { command: 'cargo check', passed: true } }, () => undefined);
  assert.match(passed, /\*\*Check passed\*\*: `cargo check` succeeds/);
  const failed = pure.answerMarkdown(
    'Refactor',
    { ...base, check: { command: 'cargo check', passed: false, exitCode: 101, outputTail: 'error[E0425]: x\n' } },
    () => undefined,
  );
  assert.match(failed, /\*\*Check failed\*\*: `cargo check` \(exit code 101\)/);
  assert.match(failed, /```text\nerror\[E0425\]: x\n```/);
  assert.doesNotMatch(pure.answerMarkdown('Refactor', base, () => undefined), /Check/);
});
