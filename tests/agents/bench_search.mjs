// The MCP `search` and `definitions` latency as an agent sees it: the official MCP TypeScript
// SDK's client against `rlm-lsp mcp` on a large workspace, for bench/mcp_search.sh. Waits for
// the index to cover every file, then times each call from request to response.
//
//   node bench_search.mjs BIN WORKSPACE MAX_TOTAL_BYTES [ROUNDS]
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [bin, workspace, maxBytes, roundsArg] = process.argv.slice(2);
const rounds = Number(roundsArg ?? 3);
const QUERIES = [
  "parse configuration file",
  "retry with exponential backoff",
  "hash map insert or update",
  "serialize struct to json",
  "spawn a task on the runtime",
  "read a file to a string",
  "unicode width of a character",
  "thread pool worker queue",
  "regular expression match",
  "error source chain display",
  "tls handshake certificate",
  "parse command line arguments",
  "base64 encode decode",
  "sha256 digest update finalize",
  "utf8 validation invalid byte",
  "timeout elapsed deadline",
  "buffered writer flush",
  "lock poisoned mutex guard",
  "http request header value",
  "iterator adapter peekable",
];
const NAMES = ["new", "from_str", "spawn", "parse", "Error", "HashMap", "read_to_string", "Serialize"];

const t0 = performance.now();
const transport = new StdioClientTransport({
  command: bin,
  args: ["mcp", "--workspace", workspace, "--max-total-bytes", maxBytes],
  env: { ...process.env },
  stderr: "inherit",
});
const client = new Client({ name: "rlm-lsp-bench", version: "1.0.0" });
await client.connect(transport);
const connected = performance.now() - t0;

const call = async (name, args) => {
  const s = performance.now();
  const r = await client.callTool({ name, arguments: args }, undefined, { timeout: 600_000 });
  return { ms: performance.now() - s, r };
};

// Until the index covers every file (each call waits up to 20 s for it).
let index;
for (;;) {
  const { r } = await call("definitions", { name: "main" });
  index = r.structuredContent.index;
  if (index.complete) break;
}
const indexed = performance.now() - t0;
const first = await call("search", { query: "first query after indexing", k: 10 });

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { n: s.length, median: at(0.5), p90: at(0.9), max: s.at(-1) };
};
const searchMs = [];
const defsMs = [];
let hits = 0;
for (let round = 0; round < rounds; round++) {
  for (const q of QUERIES) {
    const { ms, r } = await call("search", { query: q, k: 10 });
    searchMs.push(ms);
    hits += r.structuredContent.results.length;
  }
  for (const n of NAMES) {
    const { ms } = await call("definitions", { name: n });
    defsMs.push(ms);
  }
}
await client.close();
console.log(
  JSON.stringify({
    files: index.files,
    connect_ms: connected,
    indexed_ms: indexed,
    first_search_ms: first.ms,
    search: stats(searchMs),
    search_hits: hits,
    definitions: stats(defsMs),
  }),
);
