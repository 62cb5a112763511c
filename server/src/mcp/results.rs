//! Tool results: Markdown for the agent to read and the same facts as structured JSON, and the
//! summary line of a run.

use crate::session::{Answer, Explanation, RefactorPlan, Workspace};
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Value, json};

/// A tool result: Markdown for the agent to read, and the same facts as structured JSON.
pub(super) fn result(markdown: String, structured: Value) -> CallToolResult {
    let mut r = CallToolResult::success(vec![ContentBlock::text(markdown)]);
    r.structured_content = Some(structured);
    r
}

/// A failed run, as a tool result the agent can read (not a protocol error).
pub(super) fn failed(e: anyhow::Error) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!("rlm-lsp: {e:#}"))])
}

/// The summary line of a run: turns, sub-calls, tokens per model, wall time, why it stopped.
pub fn summary_line(a: &Answer) -> String {
    let r = &a.report;
    let tokens: u64 = r
        .usage
        .iter()
        .map(|u| u.usage.prompt_tokens + u.usage.completion_tokens)
        .sum();
    let verified = a.citations.iter().filter(|c| c.verified).count();
    format!(
        "{} turns, {} sub-calls, {tokens} tokens, {:.1} s, stop: {}; {verified} of {} citations verified",
        r.iterations,
        r.sub_calls,
        r.wall.as_secs_f64(),
        r.stop_reason,
        a.citations.len()
    )
}

pub(super) fn answer_json(a: &Answer) -> Value {
    let mut v = a.to_json();
    v["summary"] = json!(summary_line(a));
    v
}

pub(super) fn answer_markdown(a: &Answer) -> String {
    format!("{}\n\n---\n{}", a.markdown(), summary_line(a))
}

pub(super) fn explanation_result(e: Explanation) -> CallToolResult {
    let mut v = answer_json(&e.answer);
    v["symbol"] = json!(e.symbol);
    v["definitions"] = json!(e.definitions);
    result(answer_markdown(&e.answer), v)
}

pub(super) fn plan_result(p: RefactorPlan, ws: &Workspace) -> CallToolResult {
    let mut v = answer_json(&p.answer);
    let files: Vec<Value> = p
        .file_changes(ws)
        .iter()
        .map(|c| {
            json!({
                "path": c.path,
                "kind": if c.old.is_none() { "create" } else if c.renamed_to.is_some() { "rename" } else { "edit" },
                "renamed_to": c.renamed_to,
                "disk_path": ws.snapshot().disk_path(&c.path),
            })
        })
        .collect();
    v["plan"] = json!(p.plan);
    v["diff"] = json!(p.diff);
    v["files"] = json!(files);
    v["dropped"] = json!(
        p.checked
            .dropped
            .iter()
            .map(|d| json!({"path": d.path, "reason": d.reason}))
            .collect::<Vec<_>>()
    );
    v["applies"] = json!(!p.is_empty());
    v["check"] = json!(p.check);
    let mut md = p.plan.trim_end().to_string();
    if p.is_empty() {
        md.push_str("\n\nNo edit passed the checks: nothing to apply.");
    } else {
        md.push_str(&format!(
            "\n\n```diff\n{}```\n\nThe edits were checked against the workspace (they apply, the \
             files still parse); nothing was written.",
            p.diff
        ));
    }
    if let Some(line) = p.check_line() {
        md.push_str(&format!("\n\n{line}"));
    }
    md.push_str(&format!("\n\n---\n{}", summary_line(&p.answer)));
    result(md, v)
}
