//! `rlm-lsp acp`: an Agent Client Protocol agent over stdio, on the official Rust SDK
//! (`agent-client-protocol`, protocol v1), for chat clients (Zed, JetBrains, Neovim's
//! CodeCompanion). Each prompt is a run of the [`session`](crate::session) façade over the
//! session's working directory (plus its additional directories and the roots of the command
//! line): the model's turns stream as thoughts, its code cells as tool calls, a plan shows how
//! far the run is, and the answer comes as the agent's message. `session/cancel` ends the run
//! and its REPL worker; the prompt then stops with `cancelled`.
//!
//! Slash commands (advertised with `available_commands_update`):
//! - `/refactor INSTRUCTION`: plans a refactor; its checked edits are offered as one `edit`
//!   tool call with a diff per file, through the client's own permission request, and written
//!   through the client (`fs/write_text_file`) only when the user allows them;
//! - `/search QUERY` and `/definitions NAME`: the code index alone, no model.

mod offer;
mod updates;

use crate::engine::Event;
use crate::session::{Answer, RefactorPlan, Roots, RunSettings, Runner, Workspace};
use agent_client_protocol::v1::ConnectionTo;
use agent_client_protocol::v1::schema::{
    AgentCapabilities, AvailableCommand, AvailableCommandInput, AvailableCommandsUpdate,
    CancelNotification, ClientCapabilities, ContentBlock, Implementation, InitializeRequest,
    InitializeResponse, NewSessionRequest, NewSessionResponse, PlanEntryStatus, PromptRequest,
    PromptResponse, SessionNotification, SessionUpdate, StopReason, UnstructuredCommandInput,
};
use agent_client_protocol::{Agent, Error, ErrorCode, Stdio};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use updates::{Updates, stream_event};

/// Serves ACP on stdin/stdout until the client closes it.
pub async fn serve_stdio(roots: Roots, settings: RunSettings) -> anyhow::Result<()> {
    let st = Arc::new(State {
        roots,
        settings,
        client: Mutex::new(ClientCapabilities::default()),
        sessions: Mutex::new(HashMap::new()),
        runner: tokio::sync::Mutex::new(None),
        next: AtomicU64::new(0),
    });
    let (s1, s2, s3, s4) = (st.clone(), st.clone(), st.clone(), st);
    Agent
        .v1()
        .name("rlm-lsp")
        .on_receive_request(
            async move |req: InitializeRequest, responder, _cx| {
                *lock(&s1.client) = req.client_capabilities.clone();
                responder.respond(
                    InitializeResponse::new(req.protocol_version)
                        .agent_capabilities(AgentCapabilities::new())
                        .agent_info(
                            Implementation::new("rlm-lsp", env!("CARGO_PKG_VERSION"))
                                .title("rlm-lsp (Recursive Language Models)".to_string()),
                        ),
                )
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |req: NewSessionRequest, responder, cx: ConnectionTo<_>| {
                let id = s2.new_session(&req);
                responder.respond(NewSessionResponse::new(id.clone()))?;
                // After the response, so the client knows the session the commands are for.
                let _ = cx.send_notification(SessionNotification::new(
                    id,
                    SessionUpdate::AvailableCommandsUpdate(
                        AvailableCommandsUpdate::new(commands()),
                    ),
                ));
                Ok(())
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |req: PromptRequest, responder, cx: ConnectionTo<_>| {
                // Off the dispatch loop: `session/cancel` must get through while the run goes.
                let st = s3.clone();
                let cancellation = responder.cancellation();
                cx.spawn({
                    let cx = cx.clone();
                    async move {
                        let result = st.prompt(req, &cx, cancellation).await;
                        responder.respond_with_result(result)
                    }
                })
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_notification(
            async move |n: CancelNotification, _cx: ConnectionTo<_>| {
                s4.cancel(&n.session_id.0);
                Ok(())
            },
            agent_client_protocol::on_receive_notification!(),
        )
        .connect_to(Stdio::new())
        .await
        .map_err(|e| anyhow::anyhow!("ACP: {e}"))
}

fn commands() -> Vec<AvailableCommand> {
    let cmd = |name: &str, description: &str, hint: &str| {
        AvailableCommand::new(name, description).input(AvailableCommandInput::Unstructured(
            UnstructuredCommandInput::new(hint),
        ))
    };
    vec![
        cmd(
            "refactor",
            "Plan a refactor; its checked edits are offered for your review",
            "what to change",
        ),
        cmd(
            "search",
            "Search the code index (no model, instant)",
            "words or names",
        ),
        cmd(
            "definitions",
            "Where a name is defined (no model, instant)",
            "a name",
        ),
    ]
}

struct Session {
    roots: Roots,
    workspace: Option<Arc<Workspace>>,
    /// The run in flight, cancelled by `session/cancel`.
    cancel: Option<CancellationToken>,
}

struct State {
    roots: Roots,
    settings: RunSettings,
    client: Mutex<ClientCapabilities>,
    sessions: Mutex<HashMap<String, Session>>,
    runner: tokio::sync::Mutex<Option<Runner>>,
    next: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorCode::INVALID_PARAMS, msg.into())
}

fn internal(msg: impl Into<String>) -> Error {
    Error::new(ErrorCode::INTERNAL_ERROR, msg.into())
}

/// What a prompt asks for.
enum Request {
    Ask(String),
    Refactor(String),
    Search(String),
    Definitions(String),
}

fn parse_prompt(blocks: &[ContentBlock]) -> Request {
    let mut text = String::new();
    for b in blocks {
        match b {
            ContentBlock::Text(t) => text.push_str(&t.text),
            ContentBlock::ResourceLink(l) => text.push_str(&format!(" ({})", l.uri)),
            ContentBlock::Resource(r) => {
                if let Ok(v) = serde_json::to_value(&r.resource)
                    && let Some(uri) = v["uri"].as_str()
                {
                    text.push_str(&format!(" ({uri})"));
                }
            }
            _ => {}
        }
    }
    let text = text.trim().to_string();
    let command = |name: &str| {
        text.strip_prefix(name)
            .filter(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
            .map(|rest| rest.trim().to_string())
    };
    if let Some(rest) = command("/refactor") {
        Request::Refactor(rest)
    } else if let Some(rest) = command("/search") {
        Request::Search(rest)
    } else if let Some(rest) = command("/definitions") {
        Request::Definitions(rest)
    } else {
        Request::Ask(text)
    }
}

/// A run to make.
enum Job {
    Ask(String),
    Refactor(String),
}

/// What a run gave.
enum Done {
    Answer(Answer),
    Plan(Box<RefactorPlan>),
}

impl State {
    fn new_session(&self, req: &NewSessionRequest) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("rlm-{n}");
        let mut roots = self.roots.clone();
        roots.workspace = req.cwd.clone();
        roots.roots = req
            .additional_directories
            .iter()
            .cloned()
            .chain(self.roots.roots.iter().cloned())
            .collect();
        lock(&self.sessions).insert(
            id.clone(),
            Session {
                roots,
                workspace: None,
                cancel: None,
            },
        );
        id
    }

    fn cancel(&self, session: &str) {
        if let Some(token) = lock(&self.sessions)
            .get(session)
            .and_then(|s| s.cancel.clone())
        {
            token.cancel();
        }
    }

    /// The session's workspace as it is on disk now: the one it had when no file changed (its
    /// index stays warm), else a new one.
    async fn workspace(&self, session: &str) -> Result<Arc<Workspace>, Error> {
        let (roots, old) = {
            let sessions = lock(&self.sessions);
            let s = sessions
                .get(session)
                .ok_or_else(|| invalid(format!("no session {session}")))?;
            (s.roots.clone(), s.workspace.clone())
        };
        let ws = tokio::task::spawn_blocking(move || -> anyhow::Result<Arc<Workspace>> {
            let snap = roots.walk()?;
            if let Some(old) = old
                && old.same_files(&snap)
            {
                return Ok(old);
            }
            if snap.files.is_empty() {
                anyhow::bail!(
                    "{} has no text files to ask about ({} skipped)",
                    roots.workspace.display(),
                    snap.stats.skipped.len()
                );
            }
            let ws = Workspace::new(Arc::new(snap));
            ws.warm_search();
            Ok(Arc::new(ws))
        })
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(|e| invalid(format!("{e:#}")))?;
        if let Some(s) = lock(&self.sessions).get_mut(session) {
            s.workspace = Some(ws.clone());
        }
        Ok(ws)
    }

    async fn runner(&self) -> anyhow::Result<Runner> {
        let mut slot = self.runner.lock().await;
        // A runner whose local model stopped is resolved again, which starts it anew.
        if let Some(r) = slot.as_ref()
            && !r.local_model_stopped()
        {
            return Ok(r.clone());
        }
        let r = Runner::resolve(&self.settings).await?;
        *slot = Some(r.clone());
        Ok(r)
    }

    async fn prompt(
        self: &Arc<Self>,
        req: PromptRequest,
        cx: &ConnectionTo<agent_client_protocol::Client>,
        cancellation: agent_client_protocol::RequestCancellation,
    ) -> Result<PromptResponse, Error> {
        let session = req.session_id.0.to_string();
        let token = CancellationToken::new();
        {
            let mut sessions = lock(&self.sessions);
            let s = sessions
                .get_mut(&session)
                .ok_or_else(|| invalid(format!("no session {session}")))?;
            if s.cancel.as_ref().is_some_and(|t| !t.is_cancelled()) {
                return Err(invalid(
                    "a prompt is already running in this session; cancel it first",
                ));
            }
            s.cancel = Some(token.clone());
        }
        let up = Updates {
            cx: cx.clone(),
            session: session.clone(),
        };
        let work = self
            .clone()
            .handle(parse_prompt(&req.prompt), session.clone(), up);
        // The work runs on the runtime's threads; cancelling drops it, which ends the run and
        // kills its REPL worker.
        let task = tokio::spawn(work);
        let abort = task.abort_handle();
        let outcome = tokio::select! {
            r = task => r.map_err(|e| internal(e.to_string())).and_then(|r| r),
            _ = token.cancelled() => { abort.abort(); Ok(StopReason::Cancelled) }
            _ = cancellation.cancelled() => { abort.abort(); Ok(StopReason::Cancelled) }
        };
        if let Some(s) = lock(&self.sessions).get_mut(&session) {
            s.cancel = None;
        }
        outcome.map(PromptResponse::new)
    }

    async fn handle(
        self: Arc<Self>,
        request: Request,
        session: String,
        up: Updates,
    ) -> Result<StopReason, Error> {
        match request {
            Request::Ask(q) if q.is_empty() => {
                up.message(
                    "Ask a question about the code, or use /refactor, /search or /definitions.",
                );
                Ok(StopReason::EndTurn)
            }
            Request::Search(q) => {
                let ws = self.workspace(&session).await?;
                let hits = {
                    let w = ws.clone();
                    tokio::task::spawn_blocking(move || {
                        w.wait_indexed(std::time::Duration::from_secs(20));
                        w.search(&q, 10)
                    })
                    .await
                    .map_err(|e| internal(e.to_string()))?
                    .map_err(invalid)?
                };
                let mut md = String::new();
                for h in &hits {
                    md.push_str(&format!(
                        "- `{}:{}` {}{} (score {:.2})\n",
                        h.path,
                        h.start_line,
                        h.kind,
                        h.name
                            .as_deref()
                            .map(|n| format!(" `{n}`"))
                            .unwrap_or_default(),
                        h.score
                    ));
                }
                if hits.is_empty() {
                    md.push_str("No chunk matches.");
                }
                up.message(md);
                Ok(StopReason::EndTurn)
            }
            Request::Definitions(name) => {
                let ws = self.workspace(&session).await?;
                let w = ws.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    w.wait_indexed(std::time::Duration::from_secs(20))
                })
                .await;
                let mut defs = ws.definitions(&name);
                let total = defs.len();
                defs.truncate(50);
                let mut md = String::new();
                for d in &defs {
                    md.push_str(&format!(
                        "- `{}:{}` {} `{}`\n",
                        d.path, d.start_line, d.kind, d.signature
                    ));
                }
                if defs.is_empty() {
                    md.push_str(&format!("No definition of `{name}` is indexed."));
                } else if total > defs.len() {
                    md.push_str(&format!("... and {} more.", total - defs.len()));
                }
                up.message(md);
                Ok(StopReason::EndTurn)
            }
            Request::Ask(q) => {
                let (_, done) = self.run(&session, &up, Job::Ask(q)).await?;
                if let Done::Answer(answer) = done {
                    up.message(format!(
                        "{}\n\n---\n{}",
                        answer.markdown(),
                        crate::mcp::summary_line(&answer)
                    ));
                }
                Ok(StopReason::EndTurn)
            }
            Request::Refactor(instruction) if instruction.is_empty() => {
                up.message("Say what to change: /refactor rename parse_config to load_config");
                Ok(StopReason::EndTurn)
            }
            Request::Refactor(instruction) => {
                let (ws, done) = self.run(&session, &up, Job::Refactor(instruction)).await?;
                match done {
                    Done::Plan(plan) => self.offer(&session, &up, &ws, *plan).await,
                    Done::Answer(_) => Ok(StopReason::EndTurn),
                }
            }
        }
    }

    /// One RLM run, streamed: the plan, the model's replies as thoughts, its code cells as tool
    /// calls.
    async fn run(
        &self,
        session: &str,
        up: &Updates,
        job: Job,
    ) -> Result<(Arc<Workspace>, Done), Error> {
        let last = if matches!(job, Job::Refactor(_)) {
            "Check the edits and offer them for review"
        } else {
            "Check the answer's citations"
        };
        up.plan(&[
            ("Read the workspace", PlanEntryStatus::InProgress),
            ("Search it with code", PlanEntryStatus::Pending),
            (last, PlanEntryStatus::Pending),
        ]);
        let ws = self.workspace(session).await?;
        let runner = self
            .runner()
            .await
            .map_err(|e| internal(format!("cannot reach the models: {e:#}")))?;
        let max = runner.config().max_iterations;
        up.plan(&[
            ("Read the workspace", PlanEntryStatus::Completed),
            ("Search it with code", PlanEntryStatus::InProgress),
            (last, PlanEntryStatus::Pending),
        ]);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
        let forward = {
            let up = up.clone();
            tokio::spawn(async move {
                while let Some(e) = rx.recv().await {
                    stream_event(&up, &e, max);
                }
            })
        };
        let done = match job {
            Job::Ask(q) => ws.ask(&runner, &q, Some(tx)).await.map(Done::Answer),
            Job::Refactor(instruction) => ws
                .plan_refactor(&runner, &instruction, None, Some(tx))
                .await
                .map(|p| Done::Plan(Box::new(p))),
        };
        let _ = forward.await;
        let done = done.map_err(|e| internal(format!("the run failed: {e:#}")))?;
        up.plan(&[
            ("Read the workspace", PlanEntryStatus::Completed),
            ("Search it with code", PlanEntryStatus::Completed),
            (last, PlanEntryStatus::Completed),
        ]);
        Ok((ws, done))
    }
}
