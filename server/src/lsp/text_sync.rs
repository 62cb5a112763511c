//! Text sync and the roots: each notification replaces the snapshot (never mutates it) before
//! any await, so edits are never reordered; files the walk would not take stay out of it;
//! folders, extra roots, a changed `.gitignore` walk the roots again; settings apply to the next
//! run.

use super::state::enters_snapshot;
use super::{Backend, lock, text};
use crate::workspace;
use std::path::PathBuf;
use tower_lsp_server::ls_types::*;

impl Backend {
    pub(super) async fn open_document(&self, params: DidOpenTextDocumentParams) {
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

    pub(super) async fn change_document(&self, params: DidChangeTextDocumentParams) {
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

    pub(super) async fn close_document(&self, params: DidCloseTextDocumentParams) {
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

    pub(super) async fn change_folders(&self, params: DidChangeWorkspaceFoldersParams) {
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

    pub(super) async fn change_watched_files(&self, params: DidChangeWatchedFilesParams) {
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

    pub(super) async fn change_configuration(&self, params: DidChangeConfigurationParams) {
        let value = match params.settings.get("rlm") {
            Some(v) if v.is_object() => v.clone(),
            _ => params.settings,
        };
        if !value.is_object() {
            return;
        }
        let current = self.settings();
        match current.overlay(&value, &self.base_settings()) {
            Ok(next) => {
                let roots_changed = next.extra_roots != current.extra_roots;
                *self
                    .state
                    .settings
                    .write()
                    .unwrap_or_else(|e| e.into_inner()) = Some(next);
                // Resolved again, with the new models, by the next run; runs in flight keep theirs.
                *self.state.runner.lock().await = None;
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
}
