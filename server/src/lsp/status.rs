//! `rlm.status` (what users paste into bug reports: version, settings with secrets redacted,
//! endpoints, roots, index, runs, last usage) and answer documents.

use super::{Backend, answer_doc, lock, settings};
use serde_json::{Value, json};
use tower_lsp_server::ls_types::*;

impl Backend {
    /// `rlm.status`.
    pub(super) fn status(&self) -> Value {
        let snap = self.snapshot();
        let index = self.index();
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
        let endpoints = self.state.runner.try_lock().ok().and_then(|r| {
            let m = r.as_ref()?.models();
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

    /// Opens the answer as a Markdown document in the editor (`answerDocument`), for clients
    /// that do not show a command's result.
    pub(super) async fn show_answer(&self, result: &Value) {
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
}
