//! The session's state: the current snapshot (replaced, never mutated, by each text-sync
//! notification), the live index, the settings, the runs in flight and the pending plans; and
//! the models resolved for runs (the façade's `Runner`).

use super::{Backend, Settings, error, lock};
use crate::engine::{EngineConfig, LiveIndex};
use crate::index::IndexOptions;
use crate::session::{Runner, Workspace};
use crate::workspace::{self, RootSpec, Snapshot, WalkOptions};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tower_lsp_server::jsonrpc::{self, ErrorCode};
use tower_lsp_server::ls_types::*;

#[derive(Default)]
pub(super) struct State {
    /// The workspace folders, in the client's order (writable roots).
    pub(super) folders: Mutex<Vec<PathBuf>>,
    /// Documents open in the editor: their buffer wins over the disk, across re-walks too.
    pub(super) open: Mutex<Vec<Uri>>,
    /// Open documents the walk would not take (hidden, ignored, too large, outside the roots,
    /// such as a gitignored `.env`): their text serves hover and nothing else. It never enters
    /// the snapshot, so model code and model prompts never see it.
    pub(super) unindexed: Mutex<HashMap<Uri, String>>,
    /// One walk of the roots at a time (folders or extra roots changed).
    pub(super) walk_lock: tokio::sync::Mutex<()>,
    /// The client can register a file watcher for us.
    pub(super) watch_supported: AtomicBool,
    /// The client applies workspace edits that create and rename files.
    pub(super) file_ops_supported: AtomicBool,
    pub(super) snapshot: RwLock<Option<Arc<Snapshot>>>,
    pub(super) index: RwLock<Option<Arc<LiveIndex>>>,
    pub(super) settings: RwLock<Option<Settings>>,
    /// A warning to show once the client is initialized.
    pub(super) pending_warning: Mutex<Option<String>>,
    pub(super) progress_supported: AtomicBool,
    /// Models and engine configuration, resolved on the first run and again after a
    /// configuration change.
    pub(super) runner: tokio::sync::Mutex<Option<Runner>>,
    /// The façade over the last snapshot a run used (its context blob is written once), reused
    /// while the snapshot is unchanged.
    pub(super) workspace: Mutex<Option<(Arc<Snapshot>, Arc<Workspace>)>>,
    pub(super) runs: Mutex<HashMap<String, RunEntry>>,
    pub(super) next_run: AtomicU64,
    pub(super) last_usage: Mutex<Option<serde_json::Value>>,
    /// Explanations computed by `rlm.explain`, by symbol and a hash of its definitions' files,
    /// so hover shows one until those files change.
    pub(super) explanations: Mutex<HashMap<(String, u64), String>>,
    /// Refactor plans waiting for the user to apply them, newest last.
    pub(super) plans: Mutex<Vec<PendingPlan>>,
}

/// A run in flight (or being set up), for `rlm.cancel` and progress cancellation.
pub(super) struct RunEntry {
    /// `None` while the run is still being set up (models, blob, progress token).
    pub(super) abort: Option<tokio::task::AbortHandle>,
    /// Its work-done progress, which the client may cancel (`window/workDoneProgress/cancel`).
    pub(super) token: Option<ProgressToken>,
    /// Set by a cancel that arrives during set-up; the run then never starts.
    pub(super) cancelled: Arc<AtomicBool>,
}

impl RunEntry {
    pub(super) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        if let Some(a) = &self.abort {
            a.abort();
        }
    }
}

/// A refactor plan shown but not applied: its edit, and what each file it touches held when it
/// was planned (the edit is refused once one of them changed).
pub(super) struct PendingPlan {
    pub(super) id: String,
    pub(super) instruction: String,
    pub(super) edit: WorkspaceEdit,
    /// Snapshot path and its text then; `None` for a path that must still be free.
    pub(super) base: Vec<(String, Option<Arc<String>>)>,
}

/// Plans kept for `rlm.applyPlan`; older ones are forgotten.
pub(super) const MAX_PENDING_PLANS: usize = 4;

impl Backend {
    pub(super) fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.state
            .snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(super) fn index(&self) -> Option<Arc<LiveIndex>> {
        self.state
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(super) fn settings(&self) -> Settings {
        self.state
            .settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| self.base_settings())
    }

    /// What the client's settings start from: the command line's, else the environment's.
    pub(super) fn base_settings(&self) -> Settings {
        self.opts
            .settings
            .clone()
            .unwrap_or_else(|| Settings::from_env().0)
    }

    /// The snapshot path of a document, when it lies under one of the roots.
    pub(super) fn snapshot_path(snap: &Snapshot, uri: &Uri) -> Option<String> {
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
    pub(super) fn update_snapshot(
        &self,
        f: impl FnOnce(&Snapshot) -> Option<(Vec<String>, Snapshot)>,
    ) {
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
            if let Some(index) = self.index() {
                for (path, text) in paths.iter().zip(texts) {
                    index.update_file(path, text.as_deref().map(String::as_str));
                }
            }
        }
    }

    /// Walks the workspace folders and the configured extra roots into a new snapshot, and
    /// starts indexing it. Open documents keep their editor text. Runs in flight keep the
    /// snapshot they started with.
    pub(super) async fn rewalk(&self) -> Result<(), String> {
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

    /// The models and engine configuration runs use: resolved from the settings on the first
    /// run (this may start the shared local model), or the models the server was given.
    pub(super) async fn runner(&self) -> jsonrpc::Result<Runner> {
        let settings = self.settings();
        let opts = self.opts.clone();
        let mut slot = self.state.runner.lock().await;
        // A runner whose local model stopped is resolved again, which starts it anew.
        if let Some(r) = slot.as_ref()
            && !r.local_model_stopped()
        {
            return Ok(r.clone());
        }
        let resolved = async move {
            let mut runner = match opts.models {
                Some(models) => Runner::from_models(models, EngineConfig::default())
                    .with_settings(&settings.run)?,
                None => Runner::resolve(&settings.run).await?,
            };
            if let Some(exe) = &opts.worker_exe {
                runner.config_mut().repl.worker_exe = exe.clone();
            }
            anyhow::Ok(runner)
        }
        .await;
        match resolved {
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

    /// The façade over `snap` and the live index (reused while the snapshot is the same, so the
    /// context blob is written once per snapshot).
    pub(super) fn workspace_for(&self, snap: &Arc<Snapshot>) -> jsonrpc::Result<Arc<Workspace>> {
        let mut cached = lock(&self.state.workspace);
        if let Some((s, w)) = cached.as_ref()
            && Arc::ptr_eq(s, snap)
        {
            return Ok(w.clone());
        }
        let index = self
            .index()
            .ok_or_else(|| error(ErrorCode::InvalidRequest, "the server is not initialized"))?;
        let ws = Arc::new(Workspace::with_index(snap.clone(), index));
        *cached = Some((snap.clone(), ws.clone()));
        Ok(ws)
    }
}

/// Whether an editor buffer for a file the snapshot lacks may enter it: only where the walk
/// would have taken the file (not hidden, not ignored, not too large, not binary).
pub(super) fn enters_snapshot(snap: &Snapshot, path: &str, text: &str, walk: &WalkOptions) -> bool {
    let Some((root, rel)) = snap.root_of(path) else {
        return false;
    };
    text.len() as u64 <= walk.max_file_bytes
        && !text.contains('\0')
        && workspace::is_walked(&root.path, std::path::Path::new(rel), walk)
}
