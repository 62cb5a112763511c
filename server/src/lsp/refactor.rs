//! `rlm.planRefactor` and `rlm.applyPlan`: a run that plans a change (through the façade,
//! checked as it goes: its edits must apply, and pass the user's check command), returned as a
//! `WorkspaceEdit` with a diff; applied only when asked (`apply: true`, the preview's `Apply`, or
//! `rlm.applyPlan`), and never over a file that changed since the plan was made.

use super::protocol::{
    self, ApplyResult, Command, DroppedOut, FileOpOut, IdParams, PlanRefactorParams,
    PlanRefactorResult,
};
use super::runs::run_result;
use super::state::{MAX_PENDING_PLANS, PendingPlan, State};
use super::{Backend, error, lock, text};
use crate::engine::refactor;
use crate::workspace::Snapshot;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tower_lsp_server::Client;
use tower_lsp_server::jsonrpc::{self, ErrorCode};
use tower_lsp_server::ls_types::*;

impl Backend {
    /// `rlm.planRefactor {instruction, uri?, range?, apply?, preview?, id?}`.
    pub(super) async fn plan_refactor(
        &self,
        arg: Option<&Value>,
        token: Option<ProgressToken>,
    ) -> jsonrpc::Result<PlanRefactorResult> {
        let p: PlanRefactorParams = protocol::params(Command::PlanRefactor, arg)
            .map_err(|e| error(ErrorCode::InvalidParams, e))?;
        if p.instruction.trim().is_empty() {
            return Err(error(
                ErrorCode::InvalidParams,
                Command::PlanRefactor.usage(),
            ));
        }
        let at = p
            .uri
            .as_ref()
            .and_then(|uri| Self::snapshot_path(self.snapshot()?.as_ref(), uri))
            .map(|path| (path, p.range.map(|r| r.start.line + 1)));
        let instruction = p.instruction.clone();
        let (ctx, plan) = self
            .run(
                p.id.clone(),
                p.instruction.clone(),
                token,
                move |ws, runner, tx| async move {
                    let at = at.as_ref().map(|(path, line)| (path.as_str(), *line));
                    ws.plan_refactor(&runner, &instruction, at, Some(tx)).await
                },
            )
            .await?;
        let snap = &ctx.snapshot;
        let mut checked = plan.checked.clone();
        let mut plan_md = plan.plan.clone();
        if !checked.files.is_empty() && !self.state.file_ops_supported.load(Ordering::Relaxed) {
            let mut why = String::new();
            for op in checked.files.drain(..) {
                let path = match op {
                    refactor::FileOp::Create { path, .. } => path,
                    refactor::FileOp::Rename { to, .. } => to,
                };
                let reason = "the editor cannot create or rename files \
                              (workspace.workspaceEdit.resourceOperations)";
                why.push_str(&format!("- `{path}`: {reason}\n"));
                checked.dropped.push(refactor::DroppedEdit {
                    path,
                    reason: reason.into(),
                });
            }
            if !plan_md.contains("**Edits dropped by the checks:**") {
                plan_md.push_str("\n\n**Edits dropped by the checks:**\n");
            }
            plan_md.push_str(&why);
        }
        let edit = workspace_edit(&checked, snap);
        let something = !checked.edits.is_empty() || !checked.files.is_empty();
        let plan_id = something.then(|| ctx.id.clone());
        if let Some(id) = &plan_id {
            self.keep_plan(id, &p.instruction, &edit, &checked, snap);
        }
        let applied = match (&plan_id, p.apply) {
            (Some(id), true) => Some(apply_plan(&self.state, &self.client, id).await),
            _ => None,
        };
        let result = PlanRefactorResult {
            run: run_result(&ctx, &plan.answer),
            plan: plan_md,
            diff: refactor::unified_diff(&checked, snap),
            check: plan.check.clone(),
            edit,
            files: checked
                .files
                .iter()
                .map(|op| match op {
                    refactor::FileOp::Create { path, .. } => {
                        FileOpOut::Create { path: path.clone() }
                    }
                    refactor::FileOp::Rename { from, to } => FileOpOut::Rename {
                        from: from.clone(),
                        to: to.clone(),
                    },
                })
                .collect(),
            dropped: checked
                .dropped
                .iter()
                .map(|d| DroppedOut {
                    path: d.path.clone(),
                    reason: d.reason.clone(),
                })
                .collect(),
            applied,
            plan_id,
        };
        if p.preview && result.plan_id.is_some() {
            self.offer_plan(&result).await;
        }
        Ok(result)
    }

    /// Keeps a plan for `rlm.applyPlan`, with what every file it touches holds now.
    fn keep_plan(
        &self,
        id: &str,
        instruction: &str,
        edit: &WorkspaceEdit,
        checked: &refactor::CheckedPlan,
        snap: &Snapshot,
    ) {
        let mut base: Vec<(String, Option<Arc<String>>)> = refactor::file_changes(checked, snap)
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
            id: id.to_string(),
            instruction: instruction.to_string(),
            edit: edit.clone(),
            base,
        });
        let excess = plans.len().saturating_sub(MAX_PENDING_PLANS);
        plans.drain(..excess);
    }

    /// The preview of a plan for clients without a plugin (the code action): the plan and its
    /// diff as a document, then a question whose "Apply" sends the edit. Unanswered, the plan
    /// stays pending and the code actions offer to apply it.
    async fn offer_plan(&self, result: &PlanRefactorResult) {
        let value = serde_json::to_value(result).unwrap_or_default();
        if !self.settings().answer_document {
            self.show_answer(&value).await;
        }
        let (state, client) = (self.state.clone(), self.client.clone());
        let id = result.plan_id.clone().unwrap_or_default();
        let files = result
            .edit
            .changes
            .as_ref()
            .map_or(0, |c| c.len())
            .max(result.files.len());
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
                    if !r.applied {
                        let why = r
                            .failure_reason
                            .as_deref()
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
    pub(super) async fn apply_plan_command(
        &self,
        arg: Option<&Value>,
    ) -> jsonrpc::Result<ApplyResult> {
        let p: IdParams = protocol::params(Command::ApplyPlan, arg)
            .map_err(|e| error(ErrorCode::InvalidParams, e))?;
        Ok(apply_plan(&self.state, &self.client, &p.id.into_string()).await)
    }
}

/// Sends a pending plan's edit to the editor (`workspace/applyEdit`) when every file it touches
/// still holds the text it was planned on.
async fn apply_plan(state: &State, client: &Client, id: &str) -> ApplyResult {
    let plan = {
        let mut plans = lock(&state.plans);
        match plans.iter().position(|p| p.id == id) {
            Some(i) => plans.remove(i),
            None => {
                return ApplyResult {
                    applied: false,
                    failure_reason: Some(format!("no pending refactor plan {id:?}")),
                };
            }
        }
    };
    let snap = state
        .snapshot
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    // Paths of the documents open in the editor: their buffers are what the edit applies to.
    let open: Vec<String> = match snap.as_ref() {
        Some(s) => lock(&state.open)
            .iter()
            .filter_map(|uri| Backend::snapshot_path(s, uri))
            .collect(),
        None => Vec::new(),
    };
    let changed: Vec<&str> = plan
        .base
        .iter()
        .filter(|(path, was)| {
            let now = snap.as_ref().and_then(|s| s.get(path)).map(|f| &f.text);
            let in_snapshot = match (was, now) {
                (Some(was), Some(now)) => was != now,
                (Some(_), None) => true,
                (None, now) => {
                    now.is_some() || snap.as_ref().is_some_and(|s| s.disk_path(path).exists())
                }
            };
            // Not every client reports changes on disk (watched files): a file no buffer
            // holds is compared with the disk too.
            let on_disk = match (snap.as_ref(), was) {
                (Some(s), Some(was)) if !open.contains(path) => {
                    std::fs::read(s.disk_path(path)).map_or(true, |now| now != was.as_bytes())
                }
                _ => false,
            };
            in_snapshot || on_disk
        })
        .map(|(path, _)| path.as_str())
        .collect();
    if !changed.is_empty() {
        return ApplyResult {
            applied: false,
            failure_reason: Some(format!(
                "changed since the plan was made: {}; plan the refactor again",
                changed.join(", ")
            )),
        };
    }
    tracing::info!("applying refactor plan {id}: {}", plan.instruction);
    match client.apply_edit(plan.edit).await {
        Ok(r) => ApplyResult {
            applied: r.applied,
            failure_reason: r.failure_reason,
        },
        Err(e) => ApplyResult {
            applied: false,
            failure_reason: Some(e.to_string()),
        },
    }
}

pub(super) fn workspace_edit(checked: &refactor::CheckedPlan, snap: &Snapshot) -> WorkspaceEdit {
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
