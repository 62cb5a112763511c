//! `rlm-lsp mcp`: a Model Context Protocol server over stdio, on the official Rust SDK
//! (`rmcp`), for coding agents (Claude Code, Codex CLI, Cursor, ...). Its tools are thin
//! wrappers of the [`session`](crate::session) façade:
//!
//! - `ask`, `explain`, `plan_refactor`: RLM runs (Markdown answer, verified citations, usage);
//!   a refactor plan comes back as a checked unified diff and is never written;
//! - `search`, `definitions`: the code index alone, no model.
//!
//! A run reports progress (`notifications/progress`) when the call carries a progress token,
//! and a `notifications/cancelled` ends it and its REPL worker. The settings are `ask`'s: the
//! same flags and `RLM_*` variables, so an `ask` here answers as `rlm-lsp ask` does.
mod params;
mod results;

use crate::config::RunLimits;
use crate::engine::Event;
use crate::session::{self, Roots, RunSettings, Runner, Workspace};
use results::{answer_json, answer_markdown, explanation_result, failed, plan_result, result};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, Implementation, ProgressNotificationParam, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt, tool, tool_handler};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use params::{
    AskParams, BudgetParam, DefinitionsParams, ExplainParams, PlanRefactorParams, RootsParam,
    SearchParams,
};
pub use results::summary_line;

/// How long `search` and `definitions` wait for the index to cover every file before they
/// answer from what is indexed (and say so).
const INDEX_WAIT: Duration = Duration::from_secs(20);

/// Workspaces with roots other than the server's kept open at once (the server's own is kept
/// too).
const OTHER_WORKSPACES: usize = 2;

/// Serves MCP on stdin/stdout until the client closes it. The default workspace (`roots`) is
/// walked at once, in the background; models are resolved on the first run.
pub async fn serve_stdio(roots: Roots, settings: RunSettings) -> anyhow::Result<()> {
    let server = McpServer::new(roots, settings);
    server.open_default_in_background();
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| anyhow::anyhow!("MCP: {e}"))?;
    running
        .waiting()
        .await
        .map_err(|e| anyhow::anyhow!("MCP: {e}"))?;
    Ok(())
}

type Opened = Result<Arc<Workspace>, String>;

struct State {
    roots: Roots,
    settings: RunSettings,
    default: tokio::sync::OnceCell<Opened>,
    /// Workspaces opened for calls that named other roots, most recent last.
    others: Mutex<Vec<(Roots, Arc<Workspace>)>>,
    runner: tokio::sync::Mutex<Option<Runner>>,
}

/// The MCP server: one default workspace (the roots of the command line), others opened on
/// demand for calls that name roots, and models resolved once.
#[derive(Clone)]
pub struct McpServer {
    state: Arc<State>,
    tool_router: ToolRouter<McpServer>,
}

fn invalid(msg: impl Into<String>) -> ErrorData {
    ErrorData::invalid_params(msg.into(), None)
}

impl McpServer {
    pub fn new(roots: Roots, settings: RunSettings) -> McpServer {
        McpServer {
            state: Arc::new(State {
                roots,
                settings,
                default: tokio::sync::OnceCell::new(),
                others: Mutex::new(Vec::new()),
                runner: tokio::sync::Mutex::new(None),
            }),
            tool_router: Self::tool_router(),
        }
    }

    /// Starts walking the default workspace now, so the first call finds it ready.
    pub fn open_default_in_background(&self) {
        let me = self.clone();
        tokio::spawn(async move {
            let _ = me.default_workspace().await;
        });
    }

    async fn default_workspace(&self) -> Opened {
        let roots = self.state.roots.clone();
        self.state
            .default
            .get_or_init(|| async move { open(roots).await })
            .await
            .clone()
    }

    /// The workspace a call works on: the server's, or one for the roots it names.
    async fn workspace(&self, p: &RootsParam) -> Result<Arc<Workspace>, ErrorData> {
        let no_roots = p.roots.as_ref().is_none_or(|r| r.is_empty());
        let no_extra = p.extra_roots.as_ref().is_none_or(|r| r.is_empty());
        if no_roots && no_extra {
            return self.default_workspace().await.map_err(invalid);
        }
        let mut roots = self.state.roots.clone();
        let cwd = std::env::current_dir().unwrap_or_default();
        let abs = |s: &String| -> PathBuf { cwd.join(s) };
        if let Some(given) = p.roots.as_ref().filter(|r| !r.is_empty()) {
            roots.workspace = abs(&given[0]);
            roots.roots = given[1..].iter().map(abs).collect();
        }
        if let Some(extra) = &p.extra_roots {
            roots.extra_roots.extend(extra.iter().map(abs));
        }
        if roots == self.state.roots {
            return self.default_workspace().await.map_err(invalid);
        }
        if let Some(ws) = lock(&self.state.others)
            .iter()
            .find(|(r, _)| *r == roots)
            .map(|(_, ws)| ws.clone())
        {
            return Ok(ws);
        }
        let ws = open(roots.clone()).await.map_err(invalid)?;
        let mut others = lock(&self.state.others);
        others.push((roots, ws.clone()));
        let excess = others.len().saturating_sub(OTHER_WORKSPACES);
        others.drain(..excess);
        Ok(ws)
    }

    /// The models, resolved on first use (this may start the shared local model), with the
    /// call's budgets over the server's.
    async fn runner(&self, budget: &BudgetParam) -> Result<Runner, anyhow::Error> {
        let base = {
            let mut slot = self.state.runner.lock().await;
            // A runner whose local model stopped is resolved again, which starts it anew.
            match slot.as_ref().filter(|r| !r.local_model_stopped()) {
                Some(r) => r.clone(),
                None => {
                    let r = Runner::resolve(&self.state.settings).await?;
                    *slot = Some(r.clone());
                    r
                }
            }
        };
        let s = &self.state.settings;
        let limits = RunLimits {
            max_iterations: budget
                .max_iterations
                .unwrap_or(s.limits.max_iterations)
                .max(1),
            max_sub_calls: budget.max_sub_calls.unwrap_or(s.limits.max_sub_calls),
            max_tokens: budget.max_tokens.unwrap_or(s.limits.max_tokens),
            max_cost: budget.max_cost.unwrap_or(s.limits.max_cost),
            max_wall_secs: budget.max_wall_secs.unwrap_or(s.limits.max_wall_secs),
            ..s.limits.clone()
        };
        base.with_limits(&limits)
    }

    /// Runs `work` (a run that sends its events to the sender it is given), reporting them as
    /// progress when the call has a progress token, until it ends or the client cancels.
    async fn run_reported<T, F, Fut>(
        &self,
        ctx: &RequestContext<RoleServer>,
        max_iterations: u32,
        work: F,
    ) -> Result<T, ErrorData>
    where
        F: FnOnce(tokio::sync::mpsc::UnboundedSender<Event>) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
        let token = ctx.meta.get_progress_token();
        let peer = ctx.peer.clone();
        let forward = tokio::spawn(async move {
            let mut n = 0u32;
            let mut progress = session::RunProgress::new(max_iterations);
            while let Some(e) = rx.recv().await {
                let message = match &e {
                    Event::RunStart { .. } | Event::RunEnd { .. } => {
                        session::progress_message(&e, max_iterations)
                    }
                    e => progress.update(e).map(|u| u.message),
                };
                let (Some(token), Some(message)) = (&token, message) else {
                    continue;
                };
                n += 1;
                let _ = peer
                    .notify_progress(
                        ProgressNotificationParam::new(token.clone(), f64::from(n))
                            .with_message(message),
                    )
                    .await;
            }
        });
        let ct = ctx.ct.clone();
        let out = tokio::select! {
            out = work(tx) => out,
            // Dropping the run's future ends the run and kills its REPL worker.
            _ = ct.cancelled() => {
                forward.abort();
                return Err(ErrorData::internal_error("the run was cancelled", None));
            }
        };
        // Every event has been forwarded once the sender is gone with the run.
        let _ = forward.await;
        Ok(out)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn open(roots: Roots) -> Opened {
    let opened = tokio::task::spawn_blocking(move || Workspace::open(&roots))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{e:#}"))?;
    opened.warm_search();
    Ok(Arc::new(opened))
}

/// Waits for the index (at most [`INDEX_WAIT`]) off the async threads; its state afterwards.
async fn index_state(ws: &Arc<Workspace>) -> Value {
    let w = ws.clone();
    let complete = tokio::task::spawn_blocking(move || w.wait_indexed(INDEX_WAIT))
        .await
        .unwrap_or(false);
    let (files, total) = ws.index_progress();
    json!({"complete": complete, "files_indexed": files, "files": total})
}

#[rmcp::tool_router]
impl McpServer {
    #[tool(
        description = "Answer a question about the whole codebase with a Recursive Language Model run: \
a model writes Python over the workspace in a sandboxed REPL, calls sub-models on the pieces it \
chose, and answers in Markdown with path:line citations, each verified against the workspace. \
Takes seconds to minutes; reports progress and can be cancelled.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn ask(
        &self,
        Parameters(p): Parameters<AskParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        if p.question.trim().is_empty() {
            return Err(invalid("ask needs a question"));
        }
        let ws = self.workspace(&p.roots).await?;
        let runner = match self.runner(&p.budget).await {
            Ok(r) => r,
            Err(e) => return Ok(failed(e)),
        };
        let max = runner.config().max_iterations;
        let out = self
            .run_reported(&ctx, max, |tx| ws.ask(&runner, &p.question, Some(tx)))
            .await?;
        Ok(match out {
            Ok(a) => result(answer_markdown(&a), answer_json(&a)),
            Err(e) => failed(e),
        })
    }

    #[tool(
        description = "Explain the symbol at a position (path, 1-based line and column): what it is \
for, where it is defined and which code uses it, with verified path:line citations. An RLM run, \
like ask.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn explain(
        &self,
        Parameters(p): Parameters<ExplainParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let ws = self.workspace(&p.roots).await?;
        let name = ws
            .symbol_at(&p.path, p.line, p.column)
            .map_err(|e| invalid(format!("{e:#}")))?;
        let runner = match self.runner(&p.budget).await {
            Ok(r) => r,
            Err(e) => return Ok(failed(e)),
        };
        let max = runner.config().max_iterations;
        let out = self
            .run_reported(&ctx, max, |tx| ws.explain_symbol(&runner, &name, Some(tx)))
            .await?;
        Ok(match out {
            Ok(e) => explanation_result(e),
            Err(e) => failed(e),
        })
    }

    #[tool(
        description = "Plan a refactor across the codebase: an RLM run finds every place to change \
and proposes edits, which are checked against the workspace (each applies exactly once, files \
still parse, read-only roots untouched). Returns the plan, a unified diff and the edits the checks \
dropped. Never writes files: apply the diff yourself if you agree with it.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn plan_refactor(
        &self,
        Parameters(p): Parameters<PlanRefactorParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        if p.instruction.trim().is_empty() {
            return Err(invalid("plan_refactor needs an instruction"));
        }
        let ws = self.workspace(&p.roots).await?;
        let runner = match self.runner(&p.budget).await {
            Ok(r) => r,
            Err(e) => return Ok(failed(e)),
        };
        let max = runner.config().max_iterations;
        let at = p.path.as_deref().map(|path| (path, p.line));
        let out = self
            .run_reported(&ctx, max, |tx| {
                ws.plan_refactor(&runner, &p.instruction, at, Some(tx))
            })
            .await?;
        Ok(match out {
            Ok(plan) => plan_result(plan, &ws),
            Err(e) => failed(e),
        })
    }

    #[tool(
        description = "Search the code index (BM25 over every chunk: definitions, Markdown sections, \
line windows) for words or names. Instant: no model. Returns path, line range, kind, name, score \
and the chunk's first lines.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn search(
        &self,
        Parameters(p): Parameters<SearchParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let ws = self.workspace(&p.roots).await?;
        let index = index_state(&ws).await;
        let k = p.k.unwrap_or(10).clamp(1, 100);
        let w = ws.clone();
        let query = p.query.clone();
        let hits = tokio::task::spawn_blocking(move || w.search(&query, k))
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?
            .map_err(invalid)?;
        let mut md = String::new();
        for h in &hits {
            md.push_str(&format!(
                "{}:{}-{} {}{} (score {:.2})\n```\n{}\n```\n",
                h.path,
                h.start_line,
                h.end_line,
                h.kind,
                h.name
                    .as_deref()
                    .map(|n| format!(" {n}"))
                    .unwrap_or_default(),
                h.score,
                h.preview
            ));
        }
        if hits.is_empty() {
            md.push_str("No chunk matches.\n");
        }
        Ok(result(md, json!({"results": hits, "index": index})))
    }

    #[tool(
        description = "Find where a name is defined (functions, methods, types, ...; tree-sitter \
definitions of 12 languages). Instant: no model. Returns path, lines, kind, parent and signature.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn definitions(
        &self,
        Parameters(p): Parameters<DefinitionsParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let ws = self.workspace(&p.roots).await?;
        let index = index_state(&ws).await;
        let mut defs = ws.definitions(&p.name);
        let total = defs.len();
        defs.truncate(p.limit.unwrap_or(50).clamp(1, 1000));
        let mut md = String::new();
        for d in &defs {
            md.push_str(&format!(
                "{}:{}-{} {} {}{}: `{}`\n",
                d.path,
                d.start_line,
                d.end_line,
                d.kind,
                d.parent
                    .as_deref()
                    .map(|p| format!("{p}::"))
                    .unwrap_or_default(),
                d.name,
                d.signature
            ));
        }
        if defs.is_empty() {
            md.push_str(&format!("No definition of `{}` is indexed.\n", p.name));
        } else if total > defs.len() {
            md.push_str(&format!(
                "... and {} more (raise `limit`, or name the parent: `Parent::{}`)\n",
                total - defs.len(),
                p.name
            ));
        }
        Ok(result(
            md,
            json!({"definitions": defs, "total": total, "index": index}),
        ))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("rlm-lsp", env!("CARGO_PKG_VERSION"))
                    .with_title("rlm-lsp: Recursive Language Models over a codebase"),
            )
            .with_instructions(
                "Tools over one codebase. `search` and `definitions` answer at once from the code \
index. `ask`, `explain` and `plan_refactor` are Recursive Language Model runs (seconds to minutes) \
whose answers cite path:line, each checked against the workspace. `plan_refactor` returns a checked \
diff and never writes files.",
            )
    }
}
