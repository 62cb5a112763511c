//! The language server (`rlm-lsp serve`). Only this module knows LSP: it turns LSP requests into
//! calls on the core (workspace snapshots, the index, the `session` façade) and the core's plain
//! results back into LSP. Commands and payloads: `docs/protocol.md`, typed in `protocol.rs`.
//!
//! Text sync is applied synchronously, before any `.await` in its handler, so edits are never
//! reordered; a run takes the current snapshot (an immutable `Arc`) and holds no lock across an
//! await. Where each request is handled:
//!
//! - `transport.rs`: frames checked before the protocol layer (malformed ones answered);
//! - `state.rs`: the session's state, the snapshot and the models;
//! - `text_sync.rs`: documents, folders, watched files, configuration;
//! - `runs.rs`: every run (`rlm.ask`, and the run of `rlm.explain` and `rlm.planRefactor`),
//!   cancellation; `progress.rs` its progress;
//! - `hover.rs`: hover, code actions, `rlm.explain`; `refactor.rs`: `rlm.planRefactor`,
//!   `rlm.applyPlan`; `status.rs`: `rlm.status`, answer documents.

mod answer_doc;
mod hover;
mod progress;
pub mod protocol;
mod refactor;
mod runs;
mod settings;
mod state;
mod status;
mod text;
mod text_sync;
mod transport;

pub use settings::Settings;

use crate::engine::Models;
use crate::workspace::WalkOptions;
use protocol::Command;
use serde_json::Value;
use state::{RunEntry, State};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncWrite};
use tower_lsp_server::jsonrpc::{self, ErrorCode};
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer, LspService, Server};

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
    /// The settings the client's options and `null`s start from [default: the `RLM_*`
    /// environment]: `rlm-lsp serve --max-iterations 8 ...` gives them.
    pub settings: Option<Settings>,
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
    let (input, output, client_done) = transport::checked(input, output);
    let runs = max_runs(&opts);
    let (service, socket) = LspService::build(|client| Backend::new(client, opts))
        .custom_method("window/workDoneProgress/cancel", Backend::cancel_progress)
        .finish();
    // Every run holds its request until it ends, so the transport must take more requests at
    // once than runs may hold: runs past `runs + MAX_QUEUED_RUNS` are refused at once, and the
    // rest (hover, text sync, cancel, shutdown) always find a place.
    let serving = Server::new(input, output, socket)
        .concurrency_level(runs + MAX_QUEUED_RUNS + FREE_REQUESTS)
        .serve(service);
    tokio::pin!(serving);
    tokio::select! {
        () = &mut serving => return,
        _ = client_done => {}
    }
    // The client said `exit` or went away. The protocol layer returns once every request in
    // flight is answered, but a handler waiting for the client's answer to a request of ours
    // (progress, a file watcher, an edit) would wait for ever: after a moment, what is left is
    // dropped (which cancels its runs and kills their workers).
    if tokio::time::timeout(EXIT_GRACE, serving).await.is_err() {
        tracing::warn!(
            "requests still in flight {EXIT_GRACE:?} after the client left; dropping them"
        );
    }
}

/// How long requests in flight may take to finish once the client is done.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs at once: `ServerOptions::max_runs`, else `RLM_MAX_RUNS`, else [`MAX_RUNS`].
fn max_runs(opts: &ServerOptions) -> usize {
    opts.max_runs
        .or_else(|| std::env::var("RLM_MAX_RUNS").ok()?.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(MAX_RUNS)
}

/// Default for `RLM_MAX_RUNS`: each run holds a REPL worker and model calls, and the local
/// model serves one conversation well at a time.
const MAX_RUNS: usize = 2;

/// Runs that may wait for a place besides those running; more are refused with an error.
const MAX_QUEUED_RUNS: usize = 16;

/// Requests served at once beyond the runs': hover, code actions, commands that do not run a
/// model, `shutdown`.
const FREE_REQUESTS: usize = 32;

pub struct Backend {
    client: Client,
    opts: ServerOptions,
    state: Arc<State>,
    /// Runs that may execute at once; the rest wait in line.
    slots: Arc<tokio::sync::Semaphore>,
    max_runs: usize,
    /// An `initialize` is being handled or succeeded. tower-lsp-server refuses a second one
    /// only after the first has answered; one sent meanwhile would walk the roots again.
    initialize_seen: std::sync::atomic::AtomicBool,
}

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

/// A typed result as the command's JSON result.
fn to_json<T: serde::Serialize>(r: jsonrpc::Result<T>) -> jsonrpc::Result<Value> {
    r.and_then(|v| {
        serde_json::to_value(v).map_err(|e| error(ErrorCode::InternalError, e.to_string()))
    })
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
            initialize_seen: Default::default(),
        }
    }

    async fn initialize_once(&self, params: InitializeParams) -> jsonrpc::Result<InitializeResult> {
        let (env, env_warning) = match &self.opts.settings {
            Some(s) => (s.clone(), None),
            None => Settings::from_env(),
        };
        let options = params.initialization_options.clone().unwrap_or(Value::Null);
        let (settings, warning) = match env.overlay(&options, &env) {
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
                    commands: Command::ALL
                        .iter()
                        .map(|c| c.as_str().to_string())
                        .collect(),
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
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> jsonrpc::Result<InitializeResult> {
        if self.initialize_seen.swap(true, Ordering::SeqCst) {
            return Err(error(
                ErrorCode::InvalidRequest,
                "initialize was already sent; it may be sent once",
            ));
        }
        let result = self.initialize_once(params).await;
        if result.is_err() {
            // A failed `initialize` may be sent again.
            self.initialize_seen.store(false, Ordering::SeqCst);
        }
        result
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
        self.open_document(params).await;
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        self.change_document(params).await;
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        self.close_document(params).await;
    }

    async fn did_change_workspace_folders(&self, params: DidChangeWorkspaceFoldersParams) {
        self.change_folders(params).await;
    }

    async fn did_change_watched_files(&self, params: DidChangeWatchedFilesParams) {
        self.change_watched_files(params).await;
    }

    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        self.change_configuration(params).await;
    }

    async fn code_action(
        &self,
        params: CodeActionParams,
    ) -> jsonrpc::Result<Option<CodeActionResponse>> {
        Ok(self.code_actions(params))
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
        let token = params.work_done_progress_params.work_done_token;
        let Some(command) = Command::parse(&params.command) else {
            let known: Vec<&str> = Command::ALL.iter().map(|c| c.as_str()).collect();
            return Err(error(
                ErrorCode::InvalidParams,
                format!(
                    "unknown command {:?}; known: {}",
                    params.command,
                    known.join(", ")
                ),
            ));
        };
        let result = match command {
            Command::Ask => to_json(self.ask(arg, token).await),
            Command::Explain => to_json(self.explain(arg, token).await),
            Command::PlanRefactor => to_json(self.plan_refactor(arg, token).await),
            Command::ApplyPlan => to_json(self.apply_plan_command(arg).await),
            Command::Cancel => to_json(self.cancel(arg)),
            Command::Status => Ok(self.status()),
        }?;
        if result.get("answer").is_some() && self.settings().answer_document {
            self.show_answer(&result).await;
        }
        Ok(Some(result))
    }
}
