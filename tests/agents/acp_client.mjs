// The official ACP TypeScript SDK's client side (`@agentclientprotocol/sdk`) against
// `rlm-lsp acp` (spawned over stdio), for tests/e2e_acp.rs: initialize, a session over
// RLM_WORKSPACE, a question answered with streamed updates, a /refactor whose edits come through
// the permission request and are written by this client (as an editor would), /search, and a
// prompt cancelled with session/cancel (its REPL worker must go). Prints one JSON object.
//
// Environment: RLM_BIN, RLM_WORKSPACE, RLM_BASE_URL (the scripted model server).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { Readable, Writable } from "node:stream";
import { PROTOCOL_VERSION, client, methods, ndJsonStream } from "@agentclientprotocol/sdk";

const bin = process.env.RLM_BIN;
const workspace = process.env.RLM_WORKSPACE;
assert.ok(bin && workspace, "set RLM_BIN and RLM_WORKSPACE");

const agent = spawn(bin, ["acp"], { stdio: ["pipe", "pipe", "inherit"], env: process.env });
const stream = ndJsonStream(Writable.toWeb(agent.stdin), Readable.toWeb(agent.stdout));

const updates = []; // every session/update, in order
const permissions = [];
const writes = [];
let answerPermission = "apply";

const app = client({ name: "rlm-lsp-e2e" })
  .onNotification(methods.client.session.update, ({ params }) => {
    updates.push(params.update);
  })
  .onRequest(methods.client.session.requestPermission, ({ params }) => {
    permissions.push(params);
    return { outcome: { outcome: "selected", optionId: answerPermission } };
  })
  .onRequest(methods.client.fs.writeTextFile, ({ params }) => {
    writes.push(params.path);
    writeFileSync(params.path, params.content);
    return {};
  });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, pred, ms = 20000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** The REPL workers among the agent's child processes (Linux /proc). */
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

const texts = (from, kind) =>
  updates
    .slice(from)
    .filter((u) => u.sessionUpdate === kind && u.content?.type === "text")
    .map((u) => u.content.text)
    .join("");

const out = await app.connectWith(stream, async (ctx) => {
  const out = {};
  const init = await ctx.request(methods.agent.initialize, {
    protocolVersion: PROTOCOL_VERSION,
    clientCapabilities: { fs: { readTextFile: false, writeTextFile: true }, terminal: false },
    clientInfo: { name: "rlm-lsp-e2e", version: "1.0.0" },
  });
  out.agent = init.agentInfo;
  assert.equal(init.protocolVersion, PROTOCOL_VERSION);

  const { sessionId } = await ctx.request(methods.agent.session.new, { cwd: workspace, mcpServers: [] });
  await until("the slash commands", () => updates.some((u) => u.sessionUpdate === "available_commands_update"));
  out.commands = updates
    .find((u) => u.sessionUpdate === "available_commands_update")
    .availableCommands.map((c) => c.name);

  const prompt = (text) =>
    ctx.request(methods.agent.session.prompt, { sessionId, prompt: [{ type: "text", text }] });

  // 1. A question: the plan, the model's turn as a thought, its code cell as a tool call, and
  //    the answer as the agent's message.
  let from = updates.length;
  const asked = await prompt("What does alpha give back?");
  assert.equal(asked.stopReason, "end_turn");
  const kinds = updates.slice(from).map((u) => u.sessionUpdate);
  out.ask_kinds = [...new Set(kinds)];
  for (const k of ["plan", "agent_thought_chunk", "tool_call", "agent_message_chunk"]) {
    assert.ok(kinds.includes(k), `no ${k} update: ${kinds}`);
  }
  const plans = updates.slice(from).filter((u) => u.sessionUpdate === "plan");
  assert.ok(plans.at(-1).entries.every((e) => e.status === "completed"), JSON.stringify(plans.at(-1)));
  out.ask_answer = texts(from, "agent_message_chunk");
  out.ask_cell = updates.slice(from).find((u) => u.sessionUpdate === "tool_call" && /turn 1 of/.test(u.title));

  // 2. /refactor: the edits come as one edit tool call with diffs, through the permission
  //    request; allowed, the agent writes them through this client.
  from = updates.length;
  const refactored = await prompt("/refactor rename alpha to first");
  assert.equal(refactored.stopReason, "end_turn");
  assert.equal(permissions.length, 1, "one permission request");
  out.permission = permissions[0];
  out.writes = writes.slice();
  out.refactor_message = texts(from, "agent_message_chunk");
  out.refactor_statuses = updates
    .slice(from)
    .filter((u) => u.sessionUpdate === "tool_call_update" && u.toolCallId === permissions[0].toolCall.toolCallId)
    .map((u) => u.status);

  // 3. /search: the index alone.
  from = updates.length;
  const searched = await prompt("/search first");
  assert.equal(searched.stopReason, "end_turn");
  out.search = texts(from, "agent_message_chunk");

  // 4. A prompt cancelled while the model thinks: it stops with `cancelled`, its worker goes.
  from = updates.length;
  const slow = prompt("Slow question about beta");
  await until("the slow run to start", () =>
    updates
      .slice(from)
      .some((u) => u.sessionUpdate === "plan" && u.entries.some((e) => e.status === "in_progress" && /code/.test(e.content))),
  );
  await until("the slow run's REPL worker", () => workers(agent.pid).length > 0);
  out.cancel_workers_before = workers(agent.pid).length;
  await ctx.notify(methods.agent.session.cancel, { sessionId });
  const stopped = await slow;
  out.cancel = stopped.stopReason;
  assert.equal(stopped.stopReason, "cancelled");
  await until("the REPL worker to be killed", () => workers(agent.pid).length === 0);

  // The session still answers.
  const again = await prompt("/definitions beta");
  assert.equal(again.stopReason, "end_turn");
  return out;
});

agent.kill();
console.log(JSON.stringify(out));
