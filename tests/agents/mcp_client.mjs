// The official MCP TypeScript SDK's client against `rlm-lsp mcp` (spawned over stdio), for
// tests/e2e_mcp.rs. Prints one JSON object with what each call returned; asserts the protocol
// facts itself (node:assert), and leaves the comparisons with `rlm-lsp ask` to the Rust test.
//
//   node mcp_client.mjs scripted   tools, search, definitions, ask (with progress), explain,
//                                  plan_refactor, and a cancelled ask (its REPL worker must go)
//   node mcp_client.mjs local      one short ask on the real local model
//
// Environment: RLM_BIN (the rlm-lsp binary), RLM_WORKSPACE, and for `scripted` RLM_BASE_URL
// (the scripted model server); every other RLM_* variable is passed on to the server.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const mode = process.argv[2] ?? "scripted";
const bin = process.env.RLM_BIN;
const workspace = process.env.RLM_WORKSPACE;
assert.ok(bin && workspace, "set RLM_BIN and RLM_WORKSPACE");

const log = (...a) => console.error("[mcp-client]", ...a);

const transport = new StdioClientTransport({
  command: bin,
  args: ["mcp", "--workspace", workspace],
  env: { ...process.env },
  stderr: "inherit",
});
const client = new Client({ name: "rlm-lsp-e2e", version: "1.0.0" });
await client.connect(transport);
const out = { server: client.getServerVersion() };

/** Text of a tool result's first content block. */
const text = (r) => r.content?.find((c) => c.type === "text")?.text ?? "";

/** The REPL workers among the server's child processes (Linux /proc). */
function workers(pid) {
  const found = [];
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    let kids = "";
    try {
      kids = readFileSync(`/proc/${pid}/task/${task}/children`, "utf8");
    } catch {
      continue;
    }
    for (const child of kids.split(/\s+/).filter(Boolean)) {
      try {
        if (readFileSync(`/proc/${child}/cmdline`, "utf8").includes("__repl-worker")) {
          found.push(Number(child));
        }
      } catch {
        // gone already
      }
    }
  }
  return found;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, pred, ms = 20000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting for ${what}`);
}

const long = { timeout: 600_000, resetTimeoutOnProgress: true };

if (mode === "scripted") {
  const { tools } = await client.listTools();
  out.tools = tools.map((t) => t.name).sort();
  assert.deepEqual(out.tools, ["ask", "definitions", "explain", "plan_refactor", "search"]);
  for (const t of tools) {
    assert.equal(t.inputSchema.type, "object", `${t.name} has an object schema`);
  }
  const ask = tools.find((t) => t.name === "ask");
  assert.deepEqual(ask.inputSchema.required, ["question"]);
  assert.ok(ask.inputSchema.properties.max_sub_calls, "ask takes budgets");
  assert.ok(ask.inputSchema.properties.extra_roots, "ask takes extra roots");

  const search = await client.callTool({ name: "search", arguments: { query: "alpha", k: 5 } });
  assert.ok(!search.isError, text(search));
  out.search = search.structuredContent;
  assert.equal(out.search.results[0].path, "a.rs");
  assert.equal(out.search.index.complete, true);

  const defs = await client.callTool({ name: "definitions", arguments: { name: "alpha" } });
  out.definitions = defs.structuredContent;
  assert.equal(out.definitions.definitions.length, 1);
  assert.ok(text(defs).startsWith("a.rs:1-3 function alpha"), text(defs));

  // A call may add read-only roots: their paths start with the root's name.
  if (process.env.RLM_EXTRA_ROOT) {
    const extra = await client.callTool({
      name: "definitions",
      arguments: { name: "gamma", extra_roots: [process.env.RLM_EXTRA_ROOT] },
    });
    out.extra_root = extra.structuredContent;
    assert.equal(out.extra_root.definitions.length, 1, text(extra));
  }

  const progress = [];
  const asked = await client.callTool(
    { name: "ask", arguments: { question: "What does alpha give back?" } },
    undefined,
    { ...long, onprogress: (p) => progress.push(p) },
  );
  assert.ok(!asked.isError, text(asked));
  out.ask = asked.structuredContent;
  out.ask_text = text(asked);
  out.ask_progress = progress;
  assert.ok(progress.length >= 2, `progress notifications: ${JSON.stringify(progress)}`);
  assert.ok(progress.some((p) => /turn 1 of \d+: ran code/.test(p.message ?? "")), JSON.stringify(progress));

  const explained = await client.callTool(
    { name: "explain", arguments: { path: "a.rs", line: 6, column: 6 } },
    undefined,
    long,
  );
  assert.ok(!explained.isError, text(explained));
  out.explain = explained.structuredContent;
  assert.equal(out.explain.symbol, "alpha");

  const planned = await client.callTool(
    { name: "plan_refactor", arguments: { instruction: "rename alpha to first", path: "a.rs", line: 1 } },
    undefined,
    long,
  );
  assert.ok(!planned.isError, text(planned));
  out.plan = planned.structuredContent;
  out.plan_text = text(planned);

  // Cancel a run while the model is thinking: the call is abandoned and the worker goes.
  const pid = transport.pid;
  const controller = new AbortController();
  const started = [];
  const slow = client
    .callTool({ name: "ask", arguments: { question: "Slow question about beta" } }, undefined, {
      ...long,
      signal: controller.signal,
      onprogress: (p) => started.push(p),
    })
    .then(
      () => "finished",
      (e) => `rejected: ${e.message ?? e}`,
    );
  await until("the slow run's first progress", () => started.length > 0);
  await until("the slow run's REPL worker", () => workers(pid).length > 0);
  const seen = workers(pid);
  controller.abort("the user cancelled");
  out.cancel = await slow;
  assert.match(out.cancel, /^rejected/);
  await until("the REPL worker to be killed", () => workers(pid).length === 0);
  out.cancel_workers_before = seen.length;
  // The server is still serving.
  const again = await client.callTool({ name: "definitions", arguments: { name: "beta" } });
  assert.equal(again.structuredContent.definitions[0].path, "b.rs");
} else if (mode === "local") {
  const progress = [];
  const asked = await client.callTool(
    { name: "ask", arguments: { question: "What is the magic number?" } },
    undefined,
    { ...long, onprogress: (p) => progress.push(p) },
  );
  assert.ok(!asked.isError, text(asked));
  out.ask = asked.structuredContent;
  out.ask_progress = progress;
  assert.ok(progress.length > 0, "progress notifications");
} else {
  assert.fail(`unknown mode ${mode}`);
}

await client.close();
console.log(JSON.stringify(out));
