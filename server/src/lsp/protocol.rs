//! The custom protocol surface, typed: the `rlm.*` commands, their arguments and results, and
//! the `rlm/progress` notification. `docs/protocol.md` documents it; the VS Code and Neovim
//! clients mirror it.

use crate::engine::check_command::CheckOutcome;
use crate::engine::citations::Citation;
use crate::engine::{Event, ModelUsage, RunReport, StopReason};
use crate::repl::EditOp;
use crate::session::ProgressUpdate;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tower_lsp_server::ls_types::notification::Notification;
use tower_lsp_server::ls_types::{Position, Range, Uri, WorkspaceEdit};

/// The commands `workspace/executeCommand` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Ask,
    Explain,
    PlanRefactor,
    ApplyPlan,
    Cancel,
    Status,
}

impl Command {
    pub const ALL: [Command; 6] = [
        Command::ApplyPlan,
        Command::Ask,
        Command::Explain,
        Command::PlanRefactor,
        Command::Cancel,
        Command::Status,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Ask => "rlm.ask",
            Command::Explain => "rlm.explain",
            Command::PlanRefactor => "rlm.planRefactor",
            Command::ApplyPlan => "rlm.applyPlan",
            Command::Cancel => "rlm.cancel",
            Command::Status => "rlm.status",
        }
    }

    pub fn parse(name: &str) -> Option<Command> {
        Command::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// How to call it, for an error about its argument.
    pub fn usage(self) -> &'static str {
        match self {
            Command::Ask => "rlm.ask takes one argument: {\"question\": \"...\", \"id\"?: \"...\"}",
            Command::Explain => {
                "rlm.explain takes {\"uri\": ..., \"position\": {\"line\": n, \"character\": n}, \"id\"?: \"...\"}"
            }
            Command::PlanRefactor => {
                "rlm.planRefactor takes {\"instruction\": \"...\", \"uri\"?, \"range\"?, \"apply\"?, \"preview\"?, \"id\"?}"
            }
            Command::ApplyPlan => "rlm.applyPlan takes {\"id\": string}",
            Command::Cancel => "rlm.cancel takes {\"id\": \"...\"}",
            Command::Status => "rlm.status takes no argument",
        }
    }
}

/// A run id as clients send it: a string, or a number (kept as its decimal text).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RunId {
    Text(String),
    Number(i64),
}

impl RunId {
    pub fn into_string(self) -> String {
        match self {
            RunId::Text(s) => s,
            RunId::Number(n) => n.to_string(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct AskParams {
    pub question: String,
    #[serde(default)]
    pub id: Option<RunId>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ExplainParams {
    pub uri: Uri,
    pub position: Position,
    #[serde(default)]
    pub id: Option<RunId>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PlanRefactorParams {
    pub instruction: String,
    #[serde(default)]
    pub uri: Option<Uri>,
    #[serde(default)]
    pub range: Option<Range>,
    /// Send the edit with `workspace/applyEdit` at once.
    #[serde(default)]
    pub apply: bool,
    /// Show the plan and ask before applying (the code action's way).
    #[serde(default)]
    pub preview: bool,
    #[serde(default)]
    pub id: Option<RunId>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IdParams {
    pub id: RunId,
}

/// A citation of the answer, checked; a verified one carries the file's URI for the editor.
#[derive(Debug, Clone, Serialize)]
pub struct CitationOut {
    #[serde(flatten)]
    pub citation: Citation,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

/// The result of `rlm.ask`, and the common part of `rlm.explain` and `rlm.planRefactor`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunResult {
    pub id: String,
    pub answer: String,
    pub citations: Vec<CitationOut>,
    pub usage: Vec<ModelUsage>,
    pub best_effort: bool,
    pub stop_reason: StopReason,
    pub iterations: u32,
    pub sub_calls: u32,
    pub wall_ms: u64,
    pub sandbox: String,
    pub edits: Vec<EditOp>,
    pub trajectory: Vec<Event>,
}

impl RunResult {
    pub fn new(id: String, report: &RunReport, citations: Vec<CitationOut>) -> RunResult {
        RunResult {
            id,
            answer: report.answer.clone(),
            citations,
            usage: report.usage.clone(),
            best_effort: report.best_effort,
            stop_reason: report.stop_reason,
            iterations: report.iterations,
            sub_calls: report.sub_calls,
            wall_ms: report.wall.as_millis() as u64,
            sandbox: report.sandbox.clone(),
            edits: report.edits.clone(),
            trajectory: report.events.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExplainResult {
    #[serde(flatten)]
    pub run: RunResult,
    pub symbol: String,
}

/// A file the plan creates or renames.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum FileOpOut {
    Create { path: String },
    Rename { from: String, to: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct DroppedOut {
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanRefactorResult {
    #[serde(flatten)]
    pub run: RunResult,
    pub plan: String,
    pub diff: String,
    pub check: Option<CheckOutcome>,
    pub edit: WorkspaceEdit,
    pub files: Vec<FileOpOut>,
    pub dropped: Vec<DroppedOut>,
    /// With `apply: true`: what the client said; else `null`.
    pub applied: Option<ApplyResult>,
    /// When the plan has edits: the id for `rlm.applyPlan`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyResult {
    pub applied: bool,
    pub failure_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CancelResult {
    pub id: String,
    pub cancelled: bool,
}

/// `rlm/progress`: a run's progress with its figures, next to the work-done progress text, so
/// clients show tokens and cost without reading them out of a sentence.
pub enum RunProgressNotification {}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunProgressParams {
    pub id: String,
    #[serde(flatten)]
    pub progress: ProgressValue,
}

/// [`ProgressUpdate`] as it goes over the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressValue {
    pub message: String,
    pub turn: u32,
    pub max_turns: u32,
    pub percentage: u32,
    pub sub_calls: u32,
    pub child_runs: u32,
    pub tokens: u64,
    pub cost_usd: Option<f64>,
}

impl From<ProgressUpdate> for ProgressValue {
    fn from(u: ProgressUpdate) -> Self {
        ProgressValue {
            message: u.message,
            turn: u.turn,
            max_turns: u.max_turns,
            percentage: u.percentage,
            sub_calls: u.sub_calls,
            child_runs: u.child_runs,
            tokens: u.tokens,
            cost_usd: u.cost_usd,
        }
    }
}

impl Notification for RunProgressNotification {
    type Params = RunProgressParams;
    const METHOD: &'static str = "rlm/progress";
}

/// Reads a command's argument into its typed form, or an error that shows the usage.
pub fn params<T: serde::de::DeserializeOwned>(
    command: Command,
    arg: Option<&Value>,
) -> Result<T, String> {
    let arg = arg.cloned().unwrap_or(Value::Null);
    serde_json::from_value(arg).map_err(|e| format!("{} ({e})", command.usage()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_and_ids_take_numbers() {
        for c in Command::ALL {
            assert_eq!(Command::parse(c.as_str()), Some(c));
        }
        assert_eq!(Command::parse("rlm.nope"), None);
        let p: AskParams = params(
            Command::Ask,
            Some(&serde_json::json!({"question": "q", "id": 7})),
        )
        .unwrap();
        assert_eq!(p.id.unwrap().into_string(), "7");
        let e = params::<AskParams>(Command::Ask, Some(&serde_json::json!({"q": 1}))).unwrap_err();
        assert!(e.starts_with("rlm.ask takes one argument"), "{e}");
    }
}
