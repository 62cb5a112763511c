//! A checked refactor plan offered for review: one `edit` tool call with a diff per file, the
//! client's permission request, and, when allowed, the files written through the client.

use super::updates::Updates;
use super::{State, lock};
use crate::session::{RefactorPlan, Workspace};
use agent_client_protocol::Error;
use agent_client_protocol::v1::schema::{
    Diff, PermissionOption, PermissionOptionKind, RequestPermissionOutcome,
    RequestPermissionRequest, SessionUpdate, StopReason, ToolCall, ToolCallContent,
    ToolCallLocation, ToolCallStatus, ToolCallUpdate, ToolCallUpdateFields, ToolKind,
    WriteTextFileRequest,
};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

impl State {
    /// Offers a checked plan's edits for review: one `edit` tool call with a diff per file,
    /// and the client's permission request; allowed, the files are written through the client.
    pub(super) async fn offer(
        &self,
        session: &str,
        up: &Updates,
        ws: &Workspace,
        plan: RefactorPlan,
    ) -> Result<StopReason, Error> {
        let summary = crate::mcp::summary_line(&plan.answer);
        let mut changes = plan.file_changes(ws);
        let mut text = plan.plan.trim_end().to_string();
        if let Some(line) = plan.check_line() {
            text.push_str(&format!("\n\n{line}"));
        }
        let renames: Vec<String> = changes
            .iter()
            .filter_map(|c| {
                c.renamed_to
                    .as_ref()
                    .map(|to| format!("`{}` to `{to}`", c.path))
            })
            .collect();
        if !renames.is_empty() {
            text.push_str(&format!(
                "\n\nThe plan also moves {}; move {} yourself (an ACP client cannot be asked to).",
                renames.join(", "),
                if renames.len() == 1 { "it" } else { "them" }
            ));
            // Their text edits stay, under the old name.
            for c in &mut changes {
                c.renamed_to = None;
            }
        }
        if changes.is_empty() {
            up.message(format!(
                "{text}\n\nNo edit passed the checks: nothing to apply.\n\n---\n{summary}"
            ));
            return Ok(StopReason::EndTurn);
        }
        let can_write = lock(&self.client).fs.write_text_file;
        if !can_write {
            up.message(format!(
                "{text}\n\nThis client does not let agents write files (fs.writeTextFile); the \
                 checked edits:\n\n```diff\n{}```\n\n---\n{summary}",
                plan.diff
            ));
            return Ok(StopReason::EndTurn);
        }
        up.message(format!("{text}\n\n---\n{summary}"));
        let snap = ws.snapshot();
        let disk: Vec<PathBuf> = changes.iter().map(|c| snap.disk_path(&c.path)).collect();
        let content: Vec<ToolCallContent> = changes
            .iter()
            .zip(&disk)
            .map(|(c, path)| {
                let mut d = Diff::new(path.clone(), c.new.clone());
                if let Some(old) = &c.old {
                    d = d.old_text(old.to_string());
                }
                ToolCallContent::Diff(d)
            })
            .collect();
        let locations: Vec<ToolCallLocation> = disk
            .iter()
            .map(|p| ToolCallLocation::new(p.clone()))
            .collect();
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let call_id = format!("refactor-{n}");
        let title = format!(
            "Apply the refactor plan ({} file{})",
            changes.len(),
            if changes.len() == 1 { "" } else { "s" }
        );
        up.send(SessionUpdate::ToolCall(
            ToolCall::new(call_id.clone(), title.clone())
                .kind(ToolKind::Edit)
                .status(ToolCallStatus::Pending)
                .content(content.clone())
                .locations(locations.clone()),
        ));
        let ask = RequestPermissionRequest::new(
            session.to_string(),
            ToolCallUpdate::new(
                call_id.clone(),
                ToolCallUpdateFields::new()
                    .title(title)
                    .kind(ToolKind::Edit)
                    .content(content)
                    .locations(locations),
            ),
            vec![
                PermissionOption::new("apply", "Apply the edits", PermissionOptionKind::AllowOnce),
                PermissionOption::new("reject", "Reject", PermissionOptionKind::RejectOnce),
            ],
        );
        let answer = up.cx.send_request(ask).block_task().await?;
        let status = |s: ToolCallStatus| {
            SessionUpdate::ToolCallUpdate(ToolCallUpdate::new(
                call_id.clone(),
                ToolCallUpdateFields::new().status(s),
            ))
        };
        let allowed = match answer.outcome {
            RequestPermissionOutcome::Selected(s) => &*s.option_id.0 == "apply",
            RequestPermissionOutcome::Cancelled => {
                up.send(status(ToolCallStatus::Failed));
                return Ok(StopReason::Cancelled);
            }
            _ => false,
        };
        if !allowed {
            up.send(status(ToolCallStatus::Failed));
            up.message("\n\nThe edits were not applied.");
            return Ok(StopReason::EndTurn);
        }
        up.send(status(ToolCallStatus::InProgress));
        let mut written = 0;
        let mut skipped = Vec::new();
        for (c, path) in changes.iter().zip(&disk) {
            // A file changed on disk since the run read it is left alone.
            let now = std::fs::read_to_string(path).ok();
            if now.as_deref() != c.old.as_deref().map(String::as_str) {
                skipped.push(format!("`{}` (changed since the plan was made)", c.path));
                continue;
            }
            up.cx
                .send_request(WriteTextFileRequest::new(
                    session.to_string(),
                    path.clone(),
                    c.new.clone(),
                ))
                .block_task()
                .await?;
            written += 1;
        }
        up.send(status(if skipped.is_empty() {
            ToolCallStatus::Completed
        } else {
            ToolCallStatus::Failed
        }));
        let mut done = format!(
            "\n\nApplied the edits to {written} file{}.",
            if written == 1 { "" } else { "s" }
        );
        if !skipped.is_empty() {
            done.push_str(&format!(" Not written: {}.", skipped.join(", ")));
        }
        up.message(done);
        // The next prompt walks again and sees the new text.
        if let Some(s) = lock(&self.sessions).get_mut(session) {
            s.workspace = None;
        }
        Ok(StopReason::EndTurn)
    }
}
