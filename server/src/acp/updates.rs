//! What the client is sent while a prompt runs: messages, thoughts and the plan, and each engine
//! event streamed as them (replies as thoughts, code cells and child runs as tool calls).

use crate::engine::Event;
use crate::session;
use agent_client_protocol::v1::ConnectionTo;
use agent_client_protocol::v1::schema::{
    ContentBlock, ContentChunk, Plan, PlanEntry, PlanEntryPriority, PlanEntryStatus,
    SessionNotification, SessionUpdate, ToolCall, ToolCallContent, ToolCallStatus, ToolKind,
};
use std::sync::atomic::{AtomicU64, Ordering};

/// Characters of a model reply or a cell's output shown in one update.
const SHOWN_CHARS: usize = 4_000;

/// Sends session updates for one session.
#[derive(Clone)]
pub(super) struct Updates {
    pub(super) cx: ConnectionTo<agent_client_protocol::Client>,
    pub(super) session: String,
}

impl Updates {
    pub(super) fn send(&self, update: SessionUpdate) {
        let _ = self
            .cx
            .send_notification(SessionNotification::new(self.session.clone(), update));
    }

    pub(super) fn message(&self, text: impl Into<String>) {
        self.send(SessionUpdate::AgentMessageChunk(ContentChunk::new(
            ContentBlock::from(text.into()),
        )));
    }

    pub(super) fn thought(&self, text: impl Into<String>) {
        self.send(SessionUpdate::AgentThoughtChunk(ContentChunk::new(
            ContentBlock::from(text.into()),
        )));
    }

    pub(super) fn plan(&self, entries: &[(&str, PlanEntryStatus)]) {
        let entries = entries
            .iter()
            .map(|(text, status)| {
                PlanEntry::new(text.to_string(), PlanEntryPriority::Medium, status.clone())
            })
            .collect();
        self.send(SessionUpdate::Plan(Plan::new(entries)));
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let head: String = s.chars().take(max).collect();
    format!("{head}\n[... cut: {} characters in all]", s.chars().count())
}

/// One engine event as session updates: the model's replies as thoughts, code cells and child
/// runs as completed tool calls, each turn in the plan.
pub(super) fn stream_event(up: &Updates, e: &Event, max: u32) {
    match e {
        Event::RootMessage {
            role: crate::llm::Role::Assistant,
            content,
            ..
        } => up.thought(format!("{}\n", cut(content.trim(), SHOWN_CHARS))),
        Event::CodeCell {
            iteration,
            index,
            code,
            stdout,
            stderr,
            error,
            ..
        } => {
            let mut out = stdout.clone();
            out.push_str(stderr);
            if let Some(err) = error {
                out.push_str(err);
            }
            let text = format!(
                "```python\n{}\n```\n```text\n{}\n```",
                code.trim_end(),
                cut(out.trim_end(), SHOWN_CHARS)
            );
            up.send(SessionUpdate::ToolCall(
                ToolCall::new(
                    format!("cell-{iteration}-{index}-{}", rand_suffix()),
                    match iteration {
                        0 => "Searched the workspace for the question's words".to_string(),
                        _ => format!(
                            "Ran code (turn {iteration} of {max}){}",
                            if error.is_some() { ": it raised" } else { "" }
                        ),
                    },
                )
                .kind(ToolKind::Search)
                .status(if error.is_some() {
                    ToolCallStatus::Failed
                } else {
                    ToolCallStatus::Completed
                })
                .content(vec![ToolCallContent::from(text)]),
            ));
        }
        Event::ChildRun {
            iteration,
            prompt,
            answer,
            ..
        } => up.send(SessionUpdate::ToolCall(
            ToolCall::new(
                format!("child-{iteration}-{}", rand_suffix()),
                format!("Child run: {}", cut(prompt, 80)),
            )
            .kind(ToolKind::Think)
            .status(ToolCallStatus::Completed)
            .content(vec![ToolCallContent::from(cut(
                answer.as_deref().unwrap_or("(no answer)"),
                SHOWN_CHARS,
            ))]),
        )),
        _ => {
            if let Some(line) = session::progress_message(e, max)
                && matches!(e, Event::RunStart { .. })
            {
                up.thought(format!("{line}\n"));
            }
        }
    }
}

/// Tool call ids must be unique in a session; runs restart their turn numbers.
fn rand_suffix() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
