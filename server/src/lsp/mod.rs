//! The language server (`rlm-lsp serve`). Only this module knows LSP: it turns LSP requests into
//! calls on the core (workspace snapshots, the index, the engine) and the core's plain results
//! back into LSP. Commands and payloads: `docs/protocol.md`.
//!
//! Text sync is applied synchronously, before any `.await` in its handler, so edits are never
//! reordered; a run takes the current snapshot (an immutable `Arc`) and holds no lock across an
//! await.

mod answer_doc;
mod settings;
mod text;
mod transport;

pub use settings::Settings;

use crate::config::ResolvedModels;
use crate::engine::{Engine, EngineConfig, Event, LiveIndex, Models, citations, refactor};
use crate::index::{Definition, IndexOptions};
use crate::repl::ContextBlob;
use crate::workspace::{self, RootSpec, Snapshot, WalkOptions};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::io::{AsyncRead, AsyncWrite};
use tower_lsp_server::jsonrpc::{self, ErrorCode};
use tower_lsp_server::ls_types::notification::Progress;
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer, LspService, Server};

/// The commands `workspace/executeCommand` accepts.
pub const COMMANDS: &[&str] = &[
    "rlm.applyPlan",
    "rlm.ask",
    "rlm.explain",
    "rlm.planRefactor",
    "rlm.cancel",
    "rlm.status",
];

/// How the server runs models and workers; tests inject theirs.
#[derive(Clone, Default)]
pub struct ServerOptions {
    /// The binary run as the REPL worker [default: the current executable].
    pub worker_exe: Option<PathBuf>,
    /// Models to use instead of resolving them from the settings (tests: a scripted server).
    pub models: Option<Models>,
    /// How roots are walked.
    pub walk: WalkOptions,
    /// Runs at once [default: `RLM_MAX_RUNS`, else 2].
    pub max_runs: Option<usize>,
    /// Where answer documents go [default: `answers/` in the user's rlm-lsp cache directory].
    pub answers_dir: Option<PathBuf>,
}

/// Serves LSP on stdin/stdout until the client exits.
pub async fn serve_stdio(opts: ServerOptions) {
    serve(tokio::io::stdin(), tokio::io::stdout(), opts).await;
}

/// Serves LSP over any byte streams (stdio, or a duplex pipe in tests).
pub async fn serve<I, O>(input: I, output: O, opts: ServerOptions)
where
    I: AsyncRead + Unpin + Send + 'static,
    O: AsyncWrite + Unpin + Send + 'static,
{
    // Malformed messages are answered before they reach the protocol layer (see transport.rs).
    let (input, output) = transport::checked(input, output);
    let runs = max_runs(&opts);
    let (service, socket) = LspService::build(|client| Backend::new(client, opts))
        .custom_method("window/workDoneProgress/cancel", Backend::cancel_progress)
        .finish();
    // Every run holds its request until it ends, so the transport must take more requests at
    // once than runs may hold: runs past `runs + MAX_QUEUED_RUNS` are refused at once, and the
    // rest (hover, text sync, cancel, shutdown) always find a place.
    Server::new(input, output, socket)
        .concurrency_level(runs + MAX_QUEUED_RUNS + FREE_REQUESTS)
        .serve(service)
        .await;
}

/// Runs at once: `ServerOptions::max_runs`, else `RLM_MAX_RUNS`, else [`MAX_RUNS`].
fn max_runs(opts: &ServerOptions) -> usize {
    opts.max_runs
        .or_else(|| std::env::var("RLM_MAX_RUNS").ok()?.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(MAX_RUNS)
}

/// Runs that may wait for a place besides those running; more are refused with an error.
const MAX_QUEUED_RUNS: usize = 16;

/// Requests served at once beyond the runs': hover, code actions, commands that do not run a
/// model, `shutdown`.
const FREE_REQUESTS: usize = 32;

/// Models resolved once, on the first run, with the engine configuration built from settings.
struct Ready {
    models: Models,
    cfg: EngineConfig,
    /// Keeps the shared local model alive while the server runs.
    _resolved: Option<ResolvedModels>,
}

struct RunEntry {
    /// `None` while the run is still being set up (models, blob, progress token).
    abort: Option<tokio::task::AbortHandle>,
    /// Its work-done progress, which the client may cancel (`window/workDoneProgress/cancel`).
    token: Option<ProgressToken>,
    /// Set by a cancel that arrives during set-up; the run then never starts.
    cancelled: Arc<AtomicBool>,
}

impl RunEntry {
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        if let Some(a) = &self.abort {
            a.abort();
        }
    }
}

/// The identifier at a position, what the index knows of it, and the key its explanation is
/// cached under.
struct SymbolAt {
    name: String,
    /// Name, and a hash of the text of the files that define it.
    key: (String, u64),
    defs: Vec<Definition>,
    snap: Arc<Snapshot>,
    index_complete: bool,
    /// False for a buffer kept out of the snapshot (see `State::unindexed`): hover only.
    indexed: bool,
}

/// Removes a run that never started from the table, however `ask` returns.
struct PendingRun {
    state: Arc<State>,
    id: String,
    armed: bool,
}

impl Drop for PendingRun {
    fn drop(&mut self) {
        if self.armed {
            lock(&self.state.runs).remove(&self.id);
        }
    }
}

#[derive(Default)]
struct State {
    /// The workspace folders, in the client's order (writable roots).
    folders: Mutex<Vec<PathBuf>>,
    /// Documents open in the editor: their buffer wins over the disk, across re-walks too.
    open: Mutex<Vec<Uri>>,
    /// Open documents the walk would not take (hidden, ignored, too large, outside the roots,
    /// such as a gitignored `.env`): their text serves hover and nothing else. It never enters
    /// the snapshot, so model code and model prompts never see it.
    unindexed: Mutex<HashMap<Uri, String>>,
    /// One walk of the roots at a time (folders or extra roots changed).
    walk_lock: tokio::sync::Mutex<()>,
    /// The client can register a file watcher for us.
    watch_supported: AtomicBool,
    /// The client applies workspace edits that create and rename files.
    file_ops_supported: AtomicBool,
    snapshot: RwLock<Option<Arc<Snapshot>>>,
    index: RwLock<Option<Arc<LiveIndex>>>,
    settings: RwLock<Option<Settings>>,
    /// A warning to show once the client is initialized.
    pending_warning: Mutex<Option<String>>,
    progress_supported: std::sync::atomic::AtomicBool,
    /// Models and engine configuration, resolved on the first run and again after a
    /// configuration change.
    ready: tokio::sync::Mutex<Option<Arc<Ready>>>,
    /// The blob of the last snapshot a run used, reused while the snapshot is unchanged.
    blob: Mutex<Option<(Arc<Snapshot>, Arc<ContextBlob>)>>,
    runs: Mutex<HashMap<String, RunEntry>>,
    next_run: AtomicU64,
    last_usage: Mutex<Option<Value>>,
    /// Explanations computed by `rlm.explain`, by symbol and a hash of its definitions' files,
    /// so hover shows one until those files change.
    explanations: Mutex<HashMap<(String, u64), String>>,
    /// Refactor plans waiting for the user to apply them, newest last.
    plans: Mutex<Vec<PendingPlan>>,
}

/// A refactor plan shown but not applied: its edit, and what each file it touches held when it
/// was planned (the edit is refused once one of them changed).
struct PendingPlan {
    id: String,
    instruction: String,
    edit: WorkspaceEdit,
    /// Snapshot path and its text then; `None` for a path that must still be free.
    base: Vec<(String, Option<Arc<String>>)>,
}

/// Plans kept for `rlm.applyPlan`; older ones are forgotten.
const MAX_PENDING_PLANS: usize = 4;

pub struct Backend {
    client: Client,
    opts: ServerOptions,
    state: Arc<State>,
    /// Runs that may execute at once; the rest wait in line (each holds a REPL worker and
    /// model calls; the local model serves one conversation well at a time).
    slots: Arc<tokio::sync::Semaphore>,
    max_runs: usize,
}

/// Default for `RLM_MAX_RUNS`.
const MAX_RUNS: usize = 2;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn error(code: ErrorCode, message: impl Into<String>) -> jsonrpc::Error {
    jsonrpc::Error {
        code,
        message: message.into().into(),
        data: None,
    }
}

/// Removes a run from the table when its request ends, however it ends, and aborts its task
/// (dropping the engine's future kills its worker) when the request was cancelled.
struct RunGuard {
    state: Arc<State>,
    id: String,
    abort: tokio::task::AbortHandle,
    progress: Option<(Client, ProgressToken)>,
    finished: bool,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        lock(&self.state.runs).remove(&self.id);
        if !self.finished {
            self.abort.abort();
            if let Some((client, token)) = self.progress.take() {
                tokio::spawn(async move {
                    end_progress(&client, token, "cancelled".into()).await;
                });
            }
        }
    }
}

async fn send_progress(client: &Client, token: ProgressToken, value: WorkDoneProgress) {
    client
        .send_notification::<Progress>(ProgressParams {
            token,
            value: ProgressParamsValue::WorkDone(value),
        })
        .await;
}

async fn end_progress(client: &Client, token: ProgressToken, message: String) {
    send_progress(
        client,
        token,
        WorkDoneProgress::End(WorkDoneProgressEnd {
            message: Some(message),
        }),
    )
    .await;
}

/// What a run has spent so far, from its events: sub-calls, tokens and cost of the root model,
/// its sub-calls and its child runs (each reports its subtree when it ends).
struct Tally {
    sub_calls: u32,
    tokens: u64,
    /// `None` once a model the price table does not know has been used.
    cost: Option<f64>,
    prices: Option<crate::llm::pricing::PriceTable>,
    root_model: String,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            sub_calls: 0,
            tokens: 0,
            cost: Some(0.0),
            prices: crate::llm::pricing::PriceTable::load().ok(),
            root_model: String::new(),
        }
    }

    fn add(&mut self, model: &str, usage: &crate::llm::Usage) {
        self.tokens += usage.prompt_tokens + usage.completion_tokens;
        let cost = self.prices.as_ref().and_then(|p| p.cost(model, usage));
        self.cost = self.cost.zip(cost).map(|(a, b)| a + b);
    }

    /// ", 3 sub-calls, 4,210 tokens, $0.0012" (no cost for free models, "cost unknown" for
    /// unpriced ones).
    fn suffix(&self) -> String {
        let mut s = String::new();
        if self.sub_calls > 0 {
            s.push_str(&format!(", {} sub-calls", self.sub_calls));
        }
        s.push_str(&format!(", {} tokens", self.tokens));
        match self.cost {
            Some(c) if c > 0.0 => s.push_str(&format!(", ${c:.4}")),
            Some(_) => {}
            None => s.push_str(", cost unknown"),
        }
        s
    }
}

/// A progress line for an engine event, with a percentage of the turns used; `None` for events
/// that say nothing new.
fn progress_line(e: &Event, max: u32, tally: &mut Tally) -> Option<(String, u32)> {
    let pct = |it: u32| (it.saturating_sub(1) * 100 / max.max(1)).min(99);
    let (line, iteration) = match e {
        Event::RunStart { root_model, .. } => {
            tally.root_model = root_model.clone();
            return None;
        }
        Event::RootMessage {
            iteration,
            role: crate::llm::Role::Assistant,
            usage,
            ..
        } => {
            if let Some(u) = usage {
                let model = tally.root_model.clone();
                tally.add(&model, u);
            }
            ("the root model replied".to_string(), *iteration)
        }
        Event::CodeCell {
            iteration,
            output_bytes,
            error,
            ..
        } => (
            format!(
                "ran code, {output_bytes} bytes of output{}",
                if error.is_some() { " (it raised)" } else { "" }
            ),
            *iteration,
        ),
        Event::SubCall {
            iteration,
            model,
            usage,
            ..
        } => {
            tally.sub_calls += 1;
            tally.add(model, usage);
            ("a sub-call returned".to_string(), *iteration)
        }
        Event::ChildRun {
            iteration,
            tokens,
            cost_usd,
            ..
        } => {
            tally.tokens += tokens;
            tally.cost = tally.cost.zip(*cost_usd).map(|(a, b)| a + b);
            ("a child run finished".to_string(), *iteration)
        }
        _ => return None,
    };
    Some((
        format!("turn {iteration} of {max}: {line}{}", tally.suffix()),
        pct(iteration),
    ))
}

/// The checked plan as a `WorkspaceEdit`: `changes` per file when it only edits text;
/// otherwise `documentChanges` with the text edits first (a renamed file is edited under its
/// old name), then each create (and its content) and rename, in the plan's order.
/// Whether an editor buffer for a file the snapshot lacks may enter it: only where the walk
/// would have taken the file (not hidden, not ignored, not too large, not binary).
fn enters_snapshot(snap: &Snapshot, path: &str, text: &str, walk: &WalkOptions) -> bool {
    let Some((root, rel)) = snap.root_of(path) else {
        return false;
    };
    text.len() as u64 <= walk.max_file_bytes
        && !text.contains('\0')
        && workspace::is_walked(&root.path, std::path::Path::new(rel), walk)
}

/// Sends a pending plan's edit to the editor (`workspace/applyEdit`) when every file it touches
/// still holds the text it was planned on. Result: `{"applied", "failureReason"?}`.
async fn apply_plan(state: &State, client: &Client, id: &str) -> Value {
    let plan = {
        let mut plans = lock(&state.plans);
        match plans.iter().position(|p| p.id == id) {
            Some(i) => plans.remove(i),
            None => {
                return json!({"applied": false,
                              "failureReason": format!("no pending refactor plan {id:?}")});
            }
        }
    };
    let snap = state
        .snapshot
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let changed: Vec<&str> = plan
        .base
        .iter()
        .filter(|(path, was)| {
            let now = snap.as_ref().and_then(|s| s.get(path)).map(|f| &f.text);
            match (was, now) {
                (Some(was), Some(now)) => was != now,
                (Some(_), None) => true,
                (None, now) => {
                    now.is_some() || snap.as_ref().is_some_and(|s| s.disk_path(path).exists())
                }
            }
        })
        .map(|(path, _)| path.as_str())
        .collect();
    if !changed.is_empty() {
        return json!({"applied": false, "failureReason": format!(
            "changed since the plan was made: {}; plan the refactor again",
            changed.join(", ")
        )});
    }
    tracing::info!("applying refactor plan {id}: {}", plan.instruction);
    match client.apply_edit(plan.edit).await {
        Ok(r) => json!({"applied": r.applied, "failureReason": r.failure_reason}),
        Err(e) => json!({"applied": false, "failureReason": e.to_string()}),
    }
}

fn workspace_edit(checked: &refactor::CheckedPlan, snap: &Snapshot) -> WorkspaceEdit {
    let uri = |path: &str| Uri::from_file_path(snap.disk_path(path));
    let mut changes: HashMap<Uri, Vec<TextEdit>> = HashMap::new();
    for e in &checked.edits {
        let (Some(file), Some(uri)) = (snap.get(&e.path), uri(&e.path)) else {
            continue;
        };
        let range = Range {
            start: text::position_of(&file.text, e.start),
            end: text::position_of(&file.text, e.end),
        };
        changes.entry(uri).or_default().push(TextEdit {
            range,
            new_text: e.new_text.clone(),
        });
    }
    if checked.files.is_empty() {
        return WorkspaceEdit {
            changes: Some(changes),
            ..WorkspaceEdit::default()
        };
    }
    let text_edit = |uri: Uri, edits: Vec<TextEdit>| {
        DocumentChangeOperation::Edit(TextDocumentEdit {
            text_document: OptionalVersionedTextDocumentIdentifier { uri, version: None },
            edits: edits.into_iter().map(OneOf::Left).collect(),
        })
    };
    let mut ops: Vec<DocumentChangeOperation> = changes
        .into_iter()
        .map(|(uri, edits)| text_edit(uri, edits))
        .collect();
    for op in &checked.files {
        match op {
            refactor::FileOp::Create { path, text } => {
                let Some(uri) = uri(path) else { continue };
                ops.push(DocumentChangeOperation::Op(ResourceOp::Create(
                    CreateFile {
                        uri: uri.clone(),
                        options: Some(CreateFileOptions {
                            overwrite: Some(false),
                            ignore_if_exists: Some(false),
                        }),
                        annotation_id: None,
                    },
                )));
                let start = Position::new(0, 0);
                let insert = TextEdit {
                    range: Range { start, end: start },
                    new_text: text.clone(),
                };
                ops.push(text_edit(uri, vec![insert]));
            }
            refactor::FileOp::Rename { from, to } => {
                let (Some(old_uri), Some(new_uri)) = (uri(from), uri(to)) else {
                    continue;
                };
                ops.push(DocumentChangeOperation::Op(ResourceOp::Rename(
                    RenameFile {
                        old_uri,
                        new_uri,
                        options: Some(RenameFileOptions {
                            overwrite: Some(false),
                            ignore_if_exists: Some(false),
                        }),
                        annotation_id: None,
                    },
                )));
            }
        }
    }
    WorkspaceEdit {
        document_changes: Some(DocumentChanges::Operations(ops)),
        ..WorkspaceEdit::default()
    }
}

impl Backend {
    fn new(client: Client, opts: ServerOptions) -> Backend {
        let runs = max_runs(&opts);
        Backend {
            client,
            opts,
            state: Arc::new(State::default()),
            slots: Arc::new(tokio::sync::Semaphore::new(runs)),
            max_runs: runs,
        }
    }

    fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.state
            .snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn settings(&self) -> Settings {
        self.state
            .settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| Settings::from_env().0)
    }

    /// The snapshot path of a document, when it lies under one of the roots.
    fn snapshot_path(snap: &Snapshot, uri: &Uri) -> Option<String> {
        let disk = uri.to_file_path()?;
        let canonical = std::fs::canonicalize(&disk).ok();
        snap.stats.roots.iter().find_map(|r| {
            let rel: PathBuf = match disk.strip_prefix(&r.path) {
                Ok(rel) => rel.to_path_buf(),
                Err(_) => {
                    let root = std::fs::canonicalize(&r.path).ok()?;
                    canonical.as_deref()?.strip_prefix(root).ok()?.to_path_buf()
                }
            };
            let rel: Vec<_> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect();
            Some(format!("{}{}", r.prefix, rel.join("/")))
        })
    }

    /// Applies one text-sync change: a new snapshot, and the changed files re-indexed (`f`
    /// returns the paths it changed). Synchronous, so notifications are applied in order.
    fn update_snapshot(&self, f: impl FnOnce(&Snapshot) -> Option<(Vec<String>, Snapshot)>) {
        let mut guard = self
            .state
            .snapshot
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(cur) = guard.as_ref()
            && let Some((paths, next)) = f(cur)
        {
            let texts: Vec<_> = paths
                .iter()
                .map(|p| next.get(p).map(|f| f.text.clone()))
                .collect();
            *guard = Some(Arc::new(next));
            drop(guard);
            if let Some(index) = self
                .state
                .index
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
            {
                for (path, text) in paths.iter().zip(texts) {
                    index.update_file(path, text.as_deref().map(String::as_str));
                }
            }
        }
    }

    /// Walks the workspace folders and the configured extra roots into a new snapshot, and
    /// starts indexing it. Open documents keep their editor text. Runs in flight keep the
    /// snapshot they started with.
    async fn rewalk(&self) -> Result<(), String> {
        let _one = self.state.walk_lock.lock().await;
        let mut specs: Vec<RootSpec> = lock(&self.state.folders)
            .iter()
            .map(|path| RootSpec {
                path: path.clone(),
                read_only: false,
            })
            .collect();
        specs.extend(
            self.settings()
                .extra_roots
                .into_iter()
                .map(|path| RootSpec {
                    path,
                    read_only: true,
                }),
        );
        let walk = self.opts.walk.clone();
        let mut snap = tokio::task::spawn_blocking(move || workspace::walk_roots(&specs, &walk))
            .await
            .map_err(|e| format!("walking the roots: {e}"))?
            .map_err(|e| format!("walking the roots: {e}"))?;
        let open = lock(&self.state.open).clone();
        let mut current = self
            .state
            .snapshot
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(old) = current.as_ref() {
            for uri in &open {
                if let (Some(was), Some(now)) = (
                    Self::snapshot_path(old, uri),
                    Self::snapshot_path(&snap, uri),
                ) && let Some(f) = old.get(&was)
                {
                    snap = snap.with_text(&now, f.text.to_string());
                }
            }
        }
        let snap = Arc::new(snap);
        *current = Some(snap.clone());
        // Under the snapshot's lock, so a text change that follows updates the new index.
        *self.state.index.write().unwrap_or_else(|e| e.into_inner()) =
            Some(LiveIndex::spawn(snap, IndexOptions::default()));
        Ok(())
    }

    /// Opens the answer as a Markdown document in the editor (`answerDocument`), for clients
    /// that do not show a command's result.
    async fn show_answer(&self, result: &Value) {
        let id = result["id"].as_str().unwrap_or("run");
        let dir = match &self.opts.answers_dir {
            Some(d) => Ok(d.clone()),
            None => crate::llm::local::user_cache_dir().map(|d| d.join("answers")),
        };
        let written = dir.map_err(|e| e.to_string()).and_then(|dir| {
            answer_doc::write(&dir, id, &answer_doc::render(result)).map_err(|e| e.to_string())
        });
        let shown = match written.map(|p| Uri::from_file_path(&p)) {
            Ok(Some(uri)) => {
                let params = ShowDocumentParams {
                    uri,
                    external: None,
                    take_focus: Some(true),
                    selection: None,
                };
                self.client
                    .show_document(params)
                    .await
                    .map_err(|e| e.to_string())
            }
            Ok(None) => Err("the answer's path is not a file URI".into()),
            Err(e) => Err(e),
        };
        if let Err(e) = shown {
            self.client
                .show_message(
                    MessageType::WARNING,
                    format!("rlm-lsp: cannot open the answer document: {e}"),
                )
                .await;
        }
    }

    /// `window/workDoneProgress/cancel`: the user cancelled a run's progress in the editor.
    async fn cancel_progress(&self, params: WorkDoneProgressCancelParams) {
        let mut runs = lock(&self.state.runs);
        let id = runs
            .iter()
            .find(|(_, r)| r.token.as_ref() == Some(&params.token))
            .map(|(id, _)| id.clone());
        if let Some(entry) = id.and_then(|id| runs.remove(&id)) {
            entry.cancel();
        }
    }

    async fn ready(&self) -> jsonrpc::Result<Arc<Ready>> {
        let settings = self.settings();
        let opts = self.opts.clone();
        let mut slot = self.state.ready.lock().await;
        if let Some(r) = slot.as_ref() {
            return Ok(r.clone());
        }
        let ready = async move {
            let (models, mut cfg, resolved) = match opts.models {
                Some(models) => (
                    models,
                    EngineConfig {
                        max_iterations: settings.max_iterations,
                        ..EngineConfig::default()
                    },
                    None,
                ),
                None => {
                    let resolved = settings.models.resolve().await?;
                    let cfg = resolved.engine_config(settings.max_iterations);
                    (resolved.models.clone(), cfg, Some(resolved))
                }
            };
            if let Some(exe) = &opts.worker_exe {
                cfg.repl.worker_exe = exe.clone();
            }
            settings.limits.apply(&mut cfg)?;
            anyhow::Ok(Arc::new(Ready {
                models,
                cfg,
                _resolved: resolved,
            }))
        }
        .await;
        match ready {
            Ok(r) => {
                *slot = Some(r.clone());
                Ok(r)
            }
            Err(e) => {
                let msg = format!("rlm-lsp: cannot reach the models: {e:#}");
                self.client
                    .show_message(MessageType::ERROR, msg.clone())
                    .await;
                Err(error(ErrorCode::InternalError, msg))
            }
        }
    }

    fn blob_for(&self, snap: &Arc<Snapshot>) -> jsonrpc::Result<Arc<ContextBlob>> {
        let mut cached = lock(&self.state.blob);
        if let Some((s, b)) = cached.as_ref()
            && Arc::ptr_eq(s, snap)
        {
            return Ok(b.clone());
        }
        let blob = ContextBlob::write(snap).map_err(|e| {
            error(
                ErrorCode::InternalError,
                format!("writing the context: {e}"),
            )
        })?;
        *cached = Some((snap.clone(), blob.clone()));
        Ok(blob)
    }

    async fn ask(
        &self,
        arg: Option<&Value>,
        token: Option<ProgressToken>,
    ) -> jsonrpc::Result<Value> {
        self.ask_checked(arg, token, None).await
    }

    /// `ask`, with a check of the final answer (a refactor plan's).
    async fn ask_checked(
        &self,
        arg: Option<&Value>,
        token: Option<ProgressToken>,
        final_check: Option<Arc<dyn crate::engine::FinalCheck>>,
    ) -> jsonrpc::Result<Value> {
        // Everything the run needs is taken before the first await: the snapshot as of now.
        let question = arg
            .and_then(|a| a.get("question"))
            .and_then(Value::as_str)
            .filter(|q| !q.trim().is_empty())
            .ok_or_else(|| {
                error(
                    ErrorCode::InvalidParams,
                    "rlm.ask takes one argument: {\"question\": \"...\"}",
                )
            })?
            .to_string();
        let snap = self
            .snapshot()
            .ok_or_else(|| error(ErrorCode::InvalidRequest, "the server is not initialized"))?;
        let index = self
            .state
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let n = self.state.next_run.fetch_add(1, Ordering::Relaxed) + 1;
        let id = arg
            .and_then(|a| a.get("id"))
            .and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .unwrap_or_else(|| format!("run-{n}"));
        // Registered at once, so `rlm.cancel` finds the run even while it is being set up.
        let cancelled = Arc::new(AtomicBool::new(false));
        {
            let mut runs = lock(&self.state.runs);
            if runs.contains_key(&id) {
                return Err(error(
                    ErrorCode::InvalidParams,
                    format!("a run with id {id:?} is already in flight"),
                ));
            }
            if runs.len() >= self.max_runs + MAX_QUEUED_RUNS {
                return Err(error(
                    ErrorCode::InvalidRequest,
                    format!(
                        "{} runs are in flight or waiting, the most the server takes; wait for \
                         one to end or cancel one (rlm.cancel)",
                        runs.len()
                    ),
                ));
            }
            runs.insert(
                id.clone(),
                RunEntry {
                    abort: None,
                    token: None,
                    cancelled: cancelled.clone(),
                },
            );
        }
        let mut pending = PendingRun {
            state: self.state.clone(),
            id: id.clone(),
            armed: true,
        };

        let ready = self.ready().await?;
        let blob = self.blob_for(&snap)?;
        let max = ready.cfg.max_iterations.max(1);

        // Progress: the client's token, else one we create when the client supports it.
        let token = match token {
            Some(t) => Some(t),
            None if self.state.progress_supported.load(Ordering::Relaxed) => {
                let t = ProgressToken::String(format!("rlm/{id}"));
                self.client
                    .create_work_done_progress(t.clone())
                    .await
                    .ok()
                    .map(|()| t)
            }
            None => None,
        };
        if let Some(entry) = lock(&self.state.runs).get_mut(&id) {
            entry.token = token.clone();
        }
        if let Some(t) = &token {
            send_progress(
                &self.client,
                t.clone(),
                WorkDoneProgress::Begin(WorkDoneProgressBegin {
                    title: "rlm: asking".into(),
                    cancellable: Some(true),
                    message: Some(format!("run {id}: {question}")),
                    percentage: Some(0),
                }),
            )
            .await;
        }

        if cancelled.load(Ordering::Acquire) {
            if let Some(t) = token {
                end_progress(&self.client, t, "cancelled".into()).await;
            }
            return Err(error(ErrorCode::RequestCancelled, "the run was cancelled"));
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
        let run_snap = snap.clone();
        let slots = self.slots.clone();
        let task = tokio::spawn(async move {
            // Queued behind the runs in flight; a cancel while waiting frees the place in line.
            let _slot = slots.acquire_owned().await;
            let mut engine = Engine::new(ready.models.clone(), ready.cfg.clone());
            if let Some(index) = index {
                engine = engine.with_index(index);
            }
            if let Some(check) = final_check {
                engine = engine.with_final_check(check);
            }
            engine.run(&run_snap, blob, &question, Some(tx)).await
        });
        // Forward events as progress while the run goes on.
        let forward = {
            let client = self.client.clone();
            let token = token.clone();
            tokio::spawn(async move {
                let mut tally = Tally::new();
                while let Some(e) = rx.recv().await {
                    if let (Some(t), Some((message, pct))) =
                        (&token, progress_line(&e, max, &mut tally))
                    {
                        send_progress(
                            &client,
                            t.clone(),
                            WorkDoneProgress::Report(WorkDoneProgressReport {
                                cancellable: Some(true),
                                message: Some(message),
                                percentage: Some(pct),
                            }),
                        )
                        .await;
                    }
                }
            })
        };
        {
            let mut runs = lock(&self.state.runs);
            if let Some(entry) = runs.get_mut(&id) {
                entry.abort = Some(task.abort_handle());
            }
            // A cancel between the check above and now.
            if cancelled.load(Ordering::Acquire) {
                task.abort();
            }
        }
        pending.armed = false;
        let mut guard = RunGuard {
            state: self.state.clone(),
            id: id.clone(),
            abort: task.abort_handle(),
            progress: token.clone().map(|t| (self.client.clone(), t)),
            finished: false,
        };
        let outcome = task.await;
        // The sender is gone with the run: every event has been forwarded when this returns.
        let _ = forward.await;
        guard.finished = true;
        drop(guard);
        let report = match outcome {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                if let Some(t) = token {
                    end_progress(&self.client, t, format!("failed: {e}")).await;
                }
                return Err(error(
                    ErrorCode::InternalError,
                    format!("the run failed: {e}"),
                ));
            }
            Err(_) => {
                if let Some(t) = token {
                    end_progress(&self.client, t, "cancelled".into()).await;
                }
                return Err(error(
                    ErrorCode::RequestCancelled,
                    format!("run {id} was cancelled"),
                ));
            }
        };
        if let Some(t) = token {
            end_progress(
                &self.client,
                t,
                format!(
                    "done: {} turns, {} sub-calls, {:.1} s",
                    report.iterations,
                    report.sub_calls,
                    report.wall.as_secs_f64()
                ),
            )
            .await;
        }
        let cites: Vec<Value> = citations::check(&report.answer, &snap)
            .into_iter()
            .map(|c| {
                let mut v = serde_json::to_value(&c).unwrap_or(Value::Null);
                if c.verified
                    && let Some(uri) = Uri::from_file_path(snap.disk_path(&c.path))
                {
                    v["uri"] = json!(uri.as_str());
                }
                v
            })
            .collect();
        let usage = serde_json::to_value(&report.usage).unwrap_or(Value::Null);
        *lock(&self.state.last_usage) = Some(usage.clone());
        Ok(json!({
            "id": id,
            "answer": report.answer,
            "citations": cites,
            "usage": usage,
            "bestEffort": report.best_effort,
            "stopReason": report.stop_reason,
            "iterations": report.iterations,
            "subCalls": report.sub_calls,
            "wallMs": report.wall.as_millis() as u64,
            "sandbox": report.sandbox,
            "edits": serde_json::to_value(&report.edits).unwrap_or(Value::Null),
            "trajectory": serde_json::to_value(&report.events).unwrap_or(Value::Null),
        }))
    }

    fn cancel(&self, arg: Option<&Value>) -> jsonrpc::Result<Value> {
        let id = arg
            .and_then(|a| a.get("id"))
            .and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .ok_or_else(|| {
                error(
                    ErrorCode::InvalidParams,
                    "rlm.cancel takes {\"id\": \"...\"}",
                )
            })?;
        let entry = lock(&self.state.runs).remove(&id);
        if let Some(e) = &entry {
            e.cancel();
        }
        Ok(json!({"id": id, "cancelled": entry.is_some()}))
    }

    fn status(&self) -> Value {
        let snap = self.snapshot();
        let index = self
            .state
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let roots: Vec<Value> = snap
            .as_ref()
            .map(|s| {
                s.stats
                    .roots
                    .iter()
                    .map(|r| {
                        json!({"name": r.name, "path": r.path, "readOnly": r.read_only,
                               "files": r.files, "bytes": r.bytes})
                    })
                    .collect()
            })
            .unwrap_or_default();
        let index = index.map(|i| {
            let cur = i.current();
            json!({
                "files": cur.len(),
                "totalFiles": i.progress().1,
                "definitions": cur.statistics().definitions,
                "complete": i.is_complete(),
            })
        });
        // The models in use once a run has resolved them (the local model's URL included).
        let endpoints = self.state.ready.try_lock().ok().and_then(|r| {
            let m = &r.as_ref()?.models;
            let ep = |c: &crate::llm::ChatClient| {
                let e = c.endpoint();
                json!({"baseUrl": settings::redact_url(&e.base_url), "model": e.model})
            };
            Some(json!({
                "root": ep(&m.root),
                "sub": ep(&m.sub),
                "childRoot": m.child_root.as_ref().map(ep),
            }))
        });
        let mut in_flight: Vec<String> = lock(&self.state.runs).keys().cloned().collect();
        in_flight.sort();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "config": self.settings().redacted(),
            "endpoints": endpoints,
            "roots": roots,
            "snapshot": snap.map(|s| json!({"files": s.files.len(), "bytes": s.total_bytes()})),
            "index": index,
            "runsInFlight": in_flight,
            "lastRunUsage": lock(&self.state.last_usage).clone(),
        })
    }

    /// What the index knows of the identifier under the cursor, at once; never a model call.
    /// The identifier at a position, and the key its explanation is cached under: the name and
    /// a hash of the text of every file that defines it (or of the file it is in, when the index
    /// knows no definition).
    fn symbol_at(&self, uri: &Uri, position: Position) -> Option<SymbolAt> {
        use std::hash::{Hash, Hasher};
        let snap = self.snapshot()?;
        let path = Self::snapshot_path(&snap, uri);
        let indexed = path.as_deref().and_then(|p| snap.get(p)).is_some();
        let name = match path.as_deref().and_then(|p| snap.get(p)) {
            Some(file) => text::identifier_at(&file.text, position)?.to_string(),
            // A buffer kept out of the snapshot: hover may look up its words, nothing more.
            None => {
                let unindexed = lock(&self.state.unindexed);
                text::identifier_at(unindexed.get(uri)?, position)?.to_string()
            }
        };
        let index = self
            .state
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let defs: Vec<Definition> = index
            .as_ref()
            .map(|i| {
                i.current()
                    .symbols(Some(&name), None, None)
                    .into_iter()
                    .filter(|d| d.name == name)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let mut paths: Vec<&str> = defs.iter().map(|d| d.path.as_str()).collect();
        if paths.is_empty()
            && let Some(p) = &path
        {
            paths.push(p);
        }
        paths.sort_unstable();
        paths.dedup();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        name.hash(&mut h);
        for p in &paths {
            p.hash(&mut h);
            snap.get(p).map(|f| f.text.as_str()).hash(&mut h);
        }
        Some(SymbolAt {
            key: (name.clone(), h.finish()),
            name,
            defs,
            snap,
            index_complete: index.is_some_and(|i| i.is_complete()),
            indexed,
        })
    }

    /// `rlm.explain {uri, position}`: an RLM run on what the symbol under the cursor is for,
    /// where it is defined and who uses it, across every root. Cached for hover.
    async fn explain(
        &self,
        arg: Option<&Value>,
        token: Option<ProgressToken>,
    ) -> jsonrpc::Result<Value> {
        let bad = || {
            error(
                ErrorCode::InvalidParams,
                "rlm.explain takes {\"uri\": ..., \"position\": {\"line\": n, \"character\": n}}",
            )
        };
        let arg = arg.ok_or_else(bad)?;
        let uri: Uri = serde_json::from_value(arg["uri"].clone()).map_err(|_| bad())?;
        let position: Position =
            serde_json::from_value(arg["position"].clone()).map_err(|_| bad())?;
        let at = self
            .symbol_at(&uri, position)
            .filter(|at| at.indexed)
            .ok_or_else(|| {
                error(
                    ErrorCode::InvalidParams,
                    "no identifier at that position in a workspace file (hidden and ignored \
                     files are not sent to models)",
                )
            })?;
        let SymbolAt {
            name, key, defs, ..
        } = at;
        let defined = if defs.is_empty() {
            "The index knows no definition of it; find where it comes from.".to_string()
        } else {
            let sites: Vec<String> = defs
                .iter()
                .map(|d| format!("{}:{}", d.path, d.start_line))
                .collect();
            format!("The index says it is defined at {}.", sites.join(", "))
        };
        let question = format!(
            "Explain the symbol `{name}`: what it is for, where it is defined, and which code uses \
             it (search every root with grep). {defined} Cite path:line for each fact."
        );
        let mut result = self
            .ask(Some(&json!({"question": question, "id": arg["id"]})), token)
            .await?;
        if let Some(answer) = result["answer"].as_str() {
            lock(&self.state.explanations).insert(key, answer.to_string());
        }
        result["symbol"] = json!(name);
        Ok(result)
    }

    /// `rlm.planRefactor {instruction, uri?, range?, apply?}`: an RLM run that finds what to change
    /// and proposes edits; every edit is checked against the current snapshot (it applies, the
    /// file still parses, no read-only root) before it is returned as a `WorkspaceEdit`; with
    /// `apply: true` the edit is sent to the client with `workspace/applyEdit`.
    async fn plan_refactor(
        &self,
        arg: Option<&Value>,
        token: Option<ProgressToken>,
    ) -> jsonrpc::Result<Value> {
        let instruction = arg
            .and_then(|a| a["instruction"].as_str())
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                error(
                    ErrorCode::InvalidParams,
                    "rlm.planRefactor takes {\"instruction\": \"...\", \"uri\"?, \"range\"?, \"apply\"?}",
                )
            })?
            .to_string();
        let arg = arg.cloned().unwrap_or(Value::Null);
        let mut question = format!("Plan this refactor: {instruction}");
        if let Ok(uri) = serde_json::from_value::<Uri>(arg["uri"].clone())
            && let Some(snap) = self.snapshot()
            && let Some(path) = Self::snapshot_path(&snap, &uri)
        {
            let line = arg["range"]["start"]["line"].as_u64().map(|l| l + 1);
            match line {
                Some(l) => question.push_str(&format!(" The user is at {path}:{l}.")),
                None => question.push_str(&format!(" The user is in {path}.")),
            }
        }
        question.push_str("\n\n");
        question.push_str(refactor::EDIT_FORMAT);
        let snap = self
            .snapshot()
            .ok_or_else(|| error(ErrorCode::InvalidRequest, "the server is not initialized"))?;
        // The run's plans are checked as it goes: no edit that applies, or the user's check
        // command failing, sends the model back to repair them.
        let plan_check = Arc::new(self.settings().check.plan_check(snap.clone()));
        let mut result = self
            .ask_checked(
                Some(&json!({"question": question, "id": arg["id"]})),
                token,
                Some(plan_check.clone()),
            )
            .await?;
        let answer = result["answer"].as_str().unwrap_or_default().to_string();
        let edits: Vec<crate::repl::EditOp> =
            serde_json::from_value(result["edits"].clone()).unwrap_or_default();
        let mut checked = refactor::check_plan(&answer, &edits, &snap);
        result["check"] = serde_json::to_value(plan_check.last_outcome()).unwrap_or(Value::Null);
        if !checked.files.is_empty() && !self.state.file_ops_supported.load(Ordering::Relaxed) {
            for op in checked.files.drain(..) {
                let path = match op {
                    refactor::FileOp::Create { path, .. } => path,
                    refactor::FileOp::Rename { to, .. } => to,
                };
                checked.dropped.push(refactor::DroppedEdit {
                    path,
                    reason: "the editor cannot create or rename files \
                             (workspace.workspaceEdit.resourceOperations)"
                        .into(),
                });
            }
        }
        let edit = workspace_edit(&checked, &snap);
        let mut plan = checked.plan.clone();
        if !checked.dropped.is_empty() {
            plan.push_str("\n\n**Edits dropped by the checks:**\n");
            for d in &checked.dropped {
                plan.push_str(&format!("- `{}`: {}\n", d.path, d.reason));
            }
        }
        let something = !checked.edits.is_empty() || !checked.files.is_empty();
        let id = result["id"].as_str().unwrap_or_default().to_string();
        if something {
            let mut base: Vec<(String, Option<Arc<String>>)> =
                refactor::file_changes(&checked, &snap)
                    .into_iter()
                    .map(|c| (c.path, c.old))
                    .collect();
            base.extend(checked.files.iter().filter_map(|op| match op {
                refactor::FileOp::Rename { to, .. } => Some((to.clone(), None)),
                refactor::FileOp::Create { .. } => None,
            }));
            let mut plans = lock(&self.state.plans);
            plans.retain(|p| p.id != id);
            plans.push(PendingPlan {
                id: id.clone(),
                instruction: instruction.clone(),
                edit: edit.clone(),
                base,
            });
            let excess = plans.len().saturating_sub(MAX_PENDING_PLANS);
            plans.drain(..excess);
            result["planId"] = json!(id);
        }
        let applied = if arg["apply"].as_bool() == Some(true) && something {
            apply_plan(&self.state, &self.client, &id).await
        } else {
            Value::Null
        };
        result["plan"] = json!(plan);
        result["diff"] = json!(refactor::unified_diff(&checked, &snap));
        result["edit"] = serde_json::to_value(&edit).unwrap_or(Value::Null);
        result["files"] = json!(
            checked
                .files
                .iter()
                .map(|op| match op {
                    refactor::FileOp::Create { path, .. } =>
                        json!({"kind": "create", "path": path}),
                    refactor::FileOp::Rename { from, to } =>
                        json!({"kind": "rename", "from": from, "to": to}),
                })
                .collect::<Vec<_>>()
        );
        result["dropped"] = json!(
            checked
                .dropped
                .iter()
                .map(|d| json!({"path": d.path, "reason": d.reason}))
                .collect::<Vec<_>>()
        );
        result["applied"] = applied;
        if arg["preview"].as_bool() == Some(true) && something {
            self.offer_plan(&result).await;
        }
        Ok(result)
    }

    /// The preview of a plan for clients without a plugin (the code action): the plan and its
    /// diff as a document, then a question whose "Apply" sends the edit. Unanswered, the plan
    /// stays pending and the code actions offer to apply it.
    async fn offer_plan(&self, result: &Value) {
        if !self.settings().answer_document {
            self.show_answer(result).await;
        }
        let (state, client) = (self.state.clone(), self.client.clone());
        let id = result["planId"].as_str().unwrap_or_default().to_string();
        let files = result["edit"]["changes"]
            .as_object()
            .map_or(0, |c| c.len())
            .max(result["files"].as_array().map_or(0, |f| f.len()));
        let message = format!(
            "rlm-lsp: the refactor plan touches {files} file{}. Apply it? (Or later with the code \
             action \"Apply the RLM refactor plan\".)",
            if files == 1 { "" } else { "s" }
        );
        // In the background: the command answers now, whenever the user decides.
        tokio::spawn(async move {
            let actions = ["Apply", "Discard"].map(|t| MessageActionItem {
                title: t.into(),
                properties: HashMap::new(),
            });
            let choice = client
                .show_message_request(MessageType::INFO, message, Some(actions.to_vec()))
                .await;
            match choice {
                Ok(Some(item)) if item.title == "Apply" => {
                    let r = apply_plan(&state, &client, &id).await;
                    if r["applied"] != true {
                        let why = r["failureReason"]
                            .as_str()
                            .unwrap_or("refused by the editor");
                        client
                            .show_message(
                                MessageType::WARNING,
                                format!("rlm-lsp: the plan was not applied: {why}"),
                            )
                            .await;
                    }
                }
                Ok(Some(_)) => lock(&state.plans).retain(|p| p.id != id),
                _ => {}
            }
        });
    }

    /// `rlm.applyPlan {id}`: applies a plan shown earlier, unless a file it touches changed.
    async fn apply_plan_command(&self, arg: Option<&Value>) -> jsonrpc::Result<Value> {
        let id = arg.and_then(|a| a["id"].as_str()).ok_or_else(|| {
            error(
                ErrorCode::InvalidParams,
                "rlm.applyPlan takes {\"id\": string}",
            )
        })?;
        Ok(apply_plan(&self.state, &self.client, id).await)
    }

    fn hover_markdown(&self, params: &HoverParams) -> Option<String> {
        let doc = &params.text_document_position_params;
        let SymbolAt {
            name,
            key,
            defs,
            snap,
            index_complete,
            ..
        } = self.symbol_at(&doc.text_document.uri, doc.position)?;
        let finder = memchr::memmem::Finder::new(name.as_bytes());
        let (mut mentions, mut files) = (0usize, 0usize);
        for f in &snap.files {
            let n = text::count_word(&finder, &f.text);
            if n > 0 {
                mentions += n;
                files += 1;
            }
        }
        if defs.is_empty() && mentions == 0 {
            return None;
        }
        let mut md = String::new();
        for d in defs.iter().take(3) {
            let lang = format!("{:?}", d.language).to_lowercase();
            md.push_str(&format!(
                "```{lang}\n{}\n```\n{} defined at `{}:{}`\n\n",
                d.signature, d.kind, d.path, d.start_line
            ));
        }
        if defs.len() > 3 {
            md.push_str(&format!("… and {} more definitions\n\n", defs.len() - 3));
        }
        let explained = lock(&self.state.explanations).get(&key).cloned();
        let references = mentions.saturating_sub(defs.len());
        md.push_str(&format!(
            "{} definition{} indexed; {references} other mention{} of `{name}` in {files} file{}{}",
            defs.len(),
            if defs.len() == 1 { "" } else { "s" },
            if references == 1 { "" } else { "s" },
            if files == 1 { "" } else { "s" },
            if index_complete {
                ""
            } else {
                " (the index is still being built)"
            }
        ));
        match explained {
            Some(text) => md.push_str(&format!(
                "\n\n---\n**Explanation** (rlm.explain):\n\n{text}"
            )),
            None => md.push_str("\n\n*Explain with RLM* (code action) for more."),
        }
        Some(md)
    }
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> jsonrpc::Result<InitializeResult> {
        let (env, env_warning) = Settings::from_env();
        let options = params.initialization_options.clone().unwrap_or(Value::Null);
        let (settings, warning) = match env.overlay(&options) {
            Ok(s) => (s, env_warning),
            Err(e) => (
                env,
                Some(format!(
                    "rlm-lsp: invalid initializationOptions ({e}); using the environment's settings"
                )),
            ),
        };
        *self
            .state
            .settings
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(settings);
        *lock(&self.state.pending_warning) = warning;
        let progress = params
            .capabilities
            .window
            .as_ref()
            .and_then(|w| w.work_done_progress)
            .unwrap_or(false);
        self.state
            .progress_supported
            .store(progress, Ordering::Relaxed);

        #[allow(deprecated)] // root_uri: clients without workspace folders still send it
        let mut roots: Vec<PathBuf> = match (&params.workspace_folders, &params.root_uri) {
            (Some(folders), _) if !folders.is_empty() => folders
                .iter()
                .filter_map(|f| f.uri.to_file_path().map(|p| p.into_owned()))
                .collect(),
            (_, Some(uri)) => uri
                .to_file_path()
                .map(|p| p.into_owned())
                .into_iter()
                .collect(),
            _ => Vec::new(),
        };
        if roots.is_empty() {
            roots.push(std::env::current_dir().map_err(|e| {
                error(
                    ErrorCode::InternalError,
                    format!("no workspace folder: {e}"),
                )
            })?);
        }
        *lock(&self.state.folders) = roots;
        let watch = params
            .capabilities
            .workspace
            .as_ref()
            .and_then(|w| w.did_change_watched_files.as_ref())
            .and_then(|w| w.dynamic_registration)
            .unwrap_or(false);
        self.state.watch_supported.store(watch, Ordering::Relaxed);
        let edits = params
            .capabilities
            .workspace
            .as_ref()
            .and_then(|w| w.workspace_edit.as_ref());
        let file_ops = edits.is_some_and(|e| {
            let ops = e.resource_operations.as_deref().unwrap_or_default();
            e.document_changes == Some(true)
                && ops.contains(&ResourceOperationKind::Create)
                && ops.contains(&ResourceOperationKind::Rename)
        });
        self.state
            .file_ops_supported
            .store(file_ops, Ordering::Relaxed);
        self.rewalk()
            .await
            .map_err(|e| error(ErrorCode::InternalError, e))?;

        Ok(InitializeResult {
            capabilities: ServerCapabilities {
                // No save notifications: a saved file's text is the buffer the server has.
                text_document_sync: Some(TextDocumentSyncCapability::Options(
                    TextDocumentSyncOptions {
                        open_close: Some(true),
                        change: Some(TextDocumentSyncKind::INCREMENTAL),
                        save: None,
                        ..TextDocumentSyncOptions::default()
                    },
                )),
                hover_provider: Some(HoverProviderCapability::Simple(true)),
                workspace: Some(WorkspaceServerCapabilities {
                    workspace_folders: Some(WorkspaceFoldersServerCapabilities {
                        supported: Some(true),
                        change_notifications: Some(OneOf::Left(true)),
                    }),
                    file_operations: None,
                }),
                code_action_provider: Some(CodeActionProviderCapability::Simple(true)),
                execute_command_provider: Some(ExecuteCommandOptions {
                    commands: COMMANDS.iter().map(|c| c.to_string()).collect(),
                    work_done_progress_options: WorkDoneProgressOptions {
                        work_done_progress: Some(true),
                    },
                }),
                ..ServerCapabilities::default()
            },
            server_info: Some(ServerInfo {
                name: "rlm-lsp".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
            }),
            ..InitializeResult::default()
        })
    }

    async fn initialized(&self, _: InitializedParams) {
        let warning = lock(&self.state.pending_warning).take();
        if let Some(w) = warning {
            tracing::warn!("{w}");
            self.client.show_message(MessageType::WARNING, w).await;
        }
        // Files changed outside the editor (a git checkout, a build, another tool) reach the
        // snapshot through the client's watcher; ignored files are filtered on our side.
        if self.state.watch_supported.load(Ordering::Relaxed) {
            let watch = DidChangeWatchedFilesRegistrationOptions {
                watchers: vec![FileSystemWatcher {
                    glob_pattern: GlobPattern::String("**/*".into()),
                    kind: None,
                }],
            };
            let registration = Registration {
                id: "rlm-watched-files".into(),
                method: "workspace/didChangeWatchedFiles".into(),
                register_options: serde_json::to_value(watch).ok(),
            };
            if let Err(e) = self.client.register_capability(vec![registration]).await {
                tracing::warn!("the client refused the file watcher: {e}");
            }
        }
    }

    async fn shutdown(&self) -> jsonrpc::Result<()> {
        let runs: Vec<RunEntry> = lock(&self.state.runs).drain().map(|(_, r)| r).collect();
        for r in runs {
            r.cancel();
        }
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        let doc = params.text_document;
        {
            let mut open = lock(&self.state.open);
            if !open.contains(&doc.uri) {
                open.push(doc.uri.clone());
            }
        }
        let walk = self.opts.walk.clone();
        let mut text = Some(doc.text);
        self.update_snapshot(|snap| {
            let path = Self::snapshot_path(snap, &doc.uri)?;
            let t = text.as_ref()?;
            if snap.get(&path).is_none() && !enters_snapshot(snap, &path, t, &walk) {
                return None;
            }
            let next = snap.with_text(&path, text.take()?);
            Some((vec![path], next))
        });
        if let Some(t) = text {
            lock(&self.state.unindexed).insert(doc.uri, t);
        }
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        let uri = &params.text_document.uri;
        if let Some(text) = lock(&self.state.unindexed).get_mut(uri) {
            for change in &params.content_changes {
                text::apply_change(text, change);
            }
            return;
        }
        self.update_snapshot(|snap| {
            let path = Self::snapshot_path(snap, uri)?;
            let mut text = snap.get(&path).map(|f| f.text.to_string())?;
            for change in &params.content_changes {
                text::apply_change(&mut text, change);
            }
            let next = snap.with_text(&path, text);
            Some((vec![path], next))
        });
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        let uri = &params.text_document.uri;
        lock(&self.state.open).retain(|u| u != uri);
        if lock(&self.state.unindexed).remove(uri).is_some() {
            return;
        }
        let walk = self.opts.walk.clone();
        self.update_snapshot(|snap| {
            let path = Self::snapshot_path(snap, uri)?;
            let next = snap.with_file_from_disk(&path, &walk);
            Some((vec![path], next))
        });
    }

    /// Folders added or removed: the roots are walked again (with several roots, paths start
    /// with the root's name, so every path may change) and indexed in the background.
    async fn did_change_workspace_folders(&self, params: DidChangeWorkspaceFoldersParams) {
        {
            let mut folders = lock(&self.state.folders);
            let path = |f: &WorkspaceFolder| f.uri.to_file_path().map(|p| p.into_owned());
            let removed: Vec<PathBuf> = params.event.removed.iter().filter_map(path).collect();
            folders.retain(|f| !removed.contains(f));
            for p in params.event.added.iter().filter_map(path) {
                if !folders.contains(&p) {
                    folders.push(p);
                }
            }
        }
        if let Err(e) = self.rewalk().await {
            self.client
                .show_message(MessageType::ERROR, format!("rlm-lsp: {e}"))
                .await;
        }
    }

    /// Files changed on disk: each is read again (or dropped when deleted); a new file is taken
    /// only where the walk would have taken it (not hidden, not ignored). Open documents keep
    /// their buffer. A changed `.gitignore` or `.ignore` walks the roots again.
    async fn did_change_watched_files(&self, params: DidChangeWatchedFilesParams) {
        let walk = self.opts.walk.clone();
        let open = lock(&self.state.open).clone();
        let mut rewalk = false;
        let mut changed: Vec<(Uri, FileChangeType)> = Vec::new();
        for change in params.changes {
            if open.contains(&change.uri) {
                continue;
            }
            let Some(disk) = change.uri.to_file_path() else {
                continue;
            };
            if matches!(
                disk.file_name().and_then(|n| n.to_str()),
                Some(".gitignore" | ".ignore")
            ) {
                rewalk = true;
            } else if !disk.is_dir() {
                changed.push((change.uri, change.typ));
            }
        }
        // All in one new snapshot: a checkout may touch thousands of files.
        self.update_snapshot(|snap| {
            let paths: Vec<String> = changed
                .iter()
                .filter_map(|(uri, typ)| {
                    let path = Self::snapshot_path(snap, uri)?;
                    if snap.get(&path).is_none() {
                        let (root, rel) = snap.root_of(&path)?;
                        let walked =
                            workspace::is_walked(&root.path, std::path::Path::new(rel), &walk);
                        if *typ == FileChangeType::DELETED || !walked {
                            return None;
                        }
                    }
                    Some(path)
                })
                .collect();
            if paths.is_empty() {
                return None;
            }
            let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
            let next = snap.with_files_from_disk(&refs, &walk);
            Some((paths, next))
        });
        if rewalk && let Err(e) = self.rewalk().await {
            self.client
                .show_message(MessageType::ERROR, format!("rlm-lsp: {e}"))
                .await;
        }
    }

    /// "Explain with RLM" on an identifier: the path to `rlm.explain` for editors without a plugin.
    async fn code_action(
        &self,
        params: CodeActionParams,
    ) -> jsonrpc::Result<Option<CodeActionResponse>> {
        let uri = params.text_document.uri;
        let position = params.range.start;
        let action = |title: &str, command: &str, args: Value| {
            CodeActionOrCommand::CodeAction(CodeAction {
                title: title.to_string(),
                kind: Some(CodeActionKind::EMPTY),
                command: Some(Command {
                    title: title.to_string(),
                    command: command.into(),
                    arguments: Some(vec![args]),
                }),
                ..CodeAction::default()
            })
        };
        let mut actions = Vec::new();
        // Hidden and ignored buffers get none: their words must not reach a model.
        if let Some(SymbolAt { name, .. }) = self.symbol_at(&uri, position).filter(|at| at.indexed)
        {
            // Without a plugin there is no prompt for an instruction: a general one. The plan
            // is previewed (a document and a question); nothing is applied until the user says so.
            let instruction = format!(
                "Improve `{name}` with the most useful small refactor (clearer names, less \
                 duplication, better error handling), updating every use"
            );
            actions.push(action(
                &format!("Explain `{name}` with RLM"),
                "rlm.explain",
                json!({"uri": uri, "position": position}),
            ));
            actions.push(action(
                &format!("Plan a refactor of `{name}` with RLM"),
                "rlm.planRefactor",
                json!({"instruction": instruction, "uri": uri, "range": params.range, "preview": true}),
            ));
        }
        if let Some(plan) = lock(&self.state.plans).last() {
            let title = format!(
                "Apply the RLM refactor plan ({})",
                plan.instruction.chars().take(60).collect::<String>()
            );
            actions.push(action(&title, "rlm.applyPlan", json!({"id": plan.id})));
        }
        Ok((!actions.is_empty()).then_some(actions))
    }

    /// New settings (the object itself, or under an `rlm` key as VS Code sends it) apply to the
    /// next run; invalid ones are refused with a message and the last good ones stay.
    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        let value = match params.settings.get("rlm") {
            Some(v) if v.is_object() => v.clone(),
            _ => params.settings,
        };
        if !value.is_object() {
            return;
        }
        let current = self.settings();
        match current.overlay(&value) {
            Ok(next) => {
                let roots_changed = next.extra_roots != current.extra_roots;
                *self
                    .state
                    .settings
                    .write()
                    .unwrap_or_else(|e| e.into_inner()) = Some(next);
                // Resolved again, with the new models, by the next run; runs in flight keep theirs.
                *self.state.ready.lock().await = None;
                self.client
                    .show_message(MessageType::INFO, "rlm-lsp: settings updated")
                    .await;
                if roots_changed && let Err(e) = self.rewalk().await {
                    self.client
                        .show_message(MessageType::ERROR, format!("rlm-lsp: {e}"))
                        .await;
                }
            }
            Err(e) => {
                self.client
                    .show_message(
                        MessageType::WARNING,
                        format!("rlm-lsp: invalid configuration ({e}); keeping the last good one"),
                    )
                    .await;
            }
        }
    }

    async fn hover(&self, params: HoverParams) -> jsonrpc::Result<Option<Hover>> {
        Ok(self.hover_markdown(&params).map(|md| Hover {
            contents: HoverContents::Markup(MarkupContent {
                kind: MarkupKind::Markdown,
                value: md,
            }),
            range: None,
        }))
    }

    async fn execute_command(
        &self,
        params: ExecuteCommandParams,
    ) -> jsonrpc::Result<Option<Value>> {
        let arg = params.arguments.first();
        let result = match params.command.as_str() {
            "rlm.ask" => self
                .ask(arg, params.work_done_progress_params.work_done_token)
                .await
                .map(Some),
            "rlm.explain" => self
                .explain(arg, params.work_done_progress_params.work_done_token)
                .await
                .map(Some),
            "rlm.planRefactor" => self
                .plan_refactor(arg, params.work_done_progress_params.work_done_token)
                .await
                .map(Some),
            "rlm.applyPlan" => self.apply_plan_command(arg).await.map(Some),
            "rlm.cancel" => self.cancel(arg).map(Some),
            "rlm.status" => Ok(Some(self.status())),
            other => Err(error(
                ErrorCode::InvalidParams,
                format!("unknown command {other:?}; known: {}", COMMANDS.join(", ")),
            )),
        };
        if let Ok(Some(r)) = &result
            && r.get("answer").is_some()
            && self.settings().answer_document
        {
            self.show_answer(r).await;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{Role, Usage};
    use expect_test::expect;

    #[test]
    fn progress_lines_carry_turns_sub_calls_tokens_and_cost() {
        let usage = |p, c| Usage {
            prompt_tokens: p,
            cached_tokens: 0,
            completion_tokens: c,
        };
        let events = [
            Event::RunStart {
                question: "q".into(),
                workspace: "w".into(),
                files: 1,
                bytes: 1,
                root_model: "gpt-4.1".into(),
                sub_model: "gpt-4.1-mini".into(),
                max_iterations: 10,
            },
            Event::RootMessage {
                iteration: 1,
                role: Role::Assistant,
                content: "```repl\n```".into(),
                usage: Some(usage(1000, 100)),
                latency_ms: Some(5),
            },
            Event::SubCall {
                iteration: 1,
                model: "gpt-4.1-mini".into(),
                prompt: "p".into(),
                response: Some("r".into()),
                error: None,
                usage: usage(2000, 50),
                latency_ms: 5,
                cached: false,
            },
            Event::SubCall {
                iteration: 2,
                model: "my-own-model".into(),
                prompt: "p".into(),
                response: Some("r".into()),
                error: None,
                usage: usage(10, 10),
                latency_ms: 5,
                cached: false,
            },
            Event::ChildRun {
                iteration: 3,
                depth: 1,
                prompt: "p".into(),
                answer: Some("a".into()),
                error: None,
                iterations: 2,
                stop_reason: "final".into(),
                wall_ms: 5,
                tokens: 1000,
                cost_usd: Some(0.5),
            },
        ];
        let mut tally = Tally::new();
        let lines: Vec<String> = events
            .iter()
            .filter_map(|e| progress_line(e, 10, &mut tally))
            .map(|(line, pct)| format!("{pct}% {line}"))
            .collect();
        expect![[r#"
            0% turn 1 of 10: the root model replied, 1100 tokens, $0.0028
            0% turn 1 of 10: a sub-call returned, 1 sub-calls, 3150 tokens, $0.0037
            10% turn 2 of 10: a sub-call returned, 2 sub-calls, 3170 tokens, cost unknown
            20% turn 3 of 10: a child run finished, 2 sub-calls, 4170 tokens, cost unknown"#]]
        .assert_eq(&lines.join("\n"));
    }
}
