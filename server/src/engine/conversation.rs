//! The root conversation of a run: messages kept and recorded, the root model asked within the
//! budget, old outputs elided to fit its window, a cell's output as the model sees it, and the
//! partial answer of a run a budget stopped.

use super::{
    BudgetKind, EngineError, Event, FinalAnswer, Run, StopReason, parse_reply, prompt,
    truncate_for_model,
};
use crate::llm::{ChatMessage, Role};
use crate::repl::CellOutput;

impl Run<'_> {
    pub(super) fn push(&mut self, iteration: u32, msg: ChatMessage) {
        if msg.role != Role::Assistant {
            self.rec.record(Event::RootMessage {
                iteration,
                role: msg.role,
                content: msg.content.clone(),
                usage: None,
                latency_ms: None,
            });
        }
        self.messages.push(msg);
    }

    /// Adds `note` to the last message sent to the model (recorded as a message of its own).
    pub(super) fn amend_last_request(&mut self, iteration: u32, note: &str) {
        match self.messages.last_mut() {
            Some(last) if last.role == Role::User => {
                last.content.push_str("\n\n");
                last.content.push_str(note);
                self.rec.record(Event::RootMessage {
                    iteration,
                    role: Role::User,
                    content: note.to_string(),
                    usage: None,
                    latency_ms: None,
                });
            }
            _ => self.push(iteration, ChatMessage::user(note.to_string())),
        }
    }

    pub(super) fn push_output(&mut self, iteration: u32, text: String) {
        self.elidable.push(self.messages.len());
        self.push(iteration, ChatMessage::user(text));
    }

    /// The root model's next reply; `None` when a budget ran out before or during the call.
    pub(super) async fn ask_root(&mut self, iteration: u32) -> Result<Option<String>, EngineError> {
        if let Some(k) = self.account.exceeded() {
            self.halted = Some(k);
            return Ok(None);
        }
        self.compact();
        let root = self.engine.models.root_at(self.depth);
        // The endpoint's one limit holds for root calls too (a child run's root, other runs).
        let slots = crate::llm::limits::for_endpoint(
            &root.endpoint().base_url,
            self.engine.cfg.sub_concurrency,
        );
        let call = async {
            let _slot = slots.acquire().await;
            root.complete(&self.messages, prompt::ROOT_STOP).await
        };
        let result = match self.account.remaining_wall() {
            Some(left) => match tokio::time::timeout(left, call).await {
                Ok(r) => r,
                Err(_) => {
                    self.halted = Some(BudgetKind::WallTime);
                    return Ok(None);
                }
            },
            None => call.await,
        };
        let c = result.map_err(EngineError::Root)?;
        self.account.charge(
            self.depth,
            "root",
            &root.endpoint().model,
            c.usage,
            c.latency,
        );
        self.model_wait += c.latency;
        self.rec.record(Event::Spent {
            iteration,
            spent: self.account.spent(),
        });
        self.rec.record(Event::RootMessage {
            iteration,
            role: Role::Assistant,
            content: c.text.clone(),
            usage: Some(c.usage),
            latency_ms: Some(c.latency.as_millis() as u64),
        });
        Ok(Some(c.text))
    }

    /// The answer of a run a budget stopped: what the model last said, else the last output it
    /// saw, marked as partial.
    pub(super) fn partial(&self, iteration: u32) -> (String, StopReason, u32) {
        let kind = self.halted.unwrap_or(BudgetKind::WallTime);
        let said = self
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::Assistant)
            .map(|m| parse_reply(&m.content))
            .and_then(|p| match p.final_answer {
                Some(FinalAnswer::Text(t)) => Some(t),
                _ => None,
            });
        let body = match said {
            Some(t) => t,
            None if !self.last_view.trim().is_empty() => {
                format!(
                    "The last output the model saw:\n\n{}",
                    self.last_view.trim()
                )
            }
            None => "Nothing was found before the budget ran out.".to_string(),
        };
        (
            format!(
                "**Partial answer**: the run stopped at its {} before a final answer.\n\n{body}",
                kind.describe(&self.engine.cfg.budget)
            ),
            StopReason::Budget,
            iteration,
        )
    }

    /// Keeps the conversation inside the root model's window by eliding the oldest outputs
    /// (never the latest one, which the model is about to read).
    fn compact(&mut self) {
        let budget = self.engine.cfg.max_context_chars;
        let mut total: usize = self.messages.iter().map(|m| m.content.len()).sum();
        let latest = self.elidable.last().copied();
        for &i in &self.elidable {
            if total <= budget {
                break;
            }
            if Some(i) == latest || self.messages[i].content.starts_with("[elided") {
                continue;
            }
            let note =
                "[elided: an earlier output, removed to save space; re-run code if you need it]";
            total -= self.messages[i].content.len();
            total += note.len();
            self.messages[i].content = note.to_string();
        }
    }

    pub(super) fn record_cell(&self, iteration: u32, index: usize, code: &str, out: &CellOutput) {
        self.rec.record(Event::CodeCell {
            iteration,
            index,
            code: code.to_string(),
            stdout: out.stdout.clone(),
            stderr: out.stderr.clone(),
            output_bytes: out.output_bytes,
            error: out.error.clone(),
            final_answer: out.final_answer.clone(),
            timed_out: out.timed_out,
            worker_died: out.worker_died.clone(),
            restored_helpers: out.restored_helpers.clone(),
            duration_ms: out.duration.as_millis() as u64,
        });
    }

    /// The model's view of one cell: its output cut to size, then what went wrong, plainly.
    pub(super) fn describe_cell(&self, out: &CellOutput, numbered: bool, index: usize) -> String {
        let cap = self.engine.cfg.max_output_chars;
        let mut printed = out.stdout.clone();
        if !out.stderr.is_empty() {
            if !printed.is_empty() && !printed.ends_with('\n') {
                printed.push('\n');
            }
            printed.push_str(&out.stderr);
        }
        let total = out.output_bytes as usize;
        let mut s = String::new();
        if numbered {
            s.push_str(&format!("[block {}]\n", index + 1));
        }
        if printed.trim().is_empty() && out.error.is_none() {
            s.push_str("(no output: print() what you want to see)\n");
        } else if !printed.trim().is_empty() {
            s.push_str("```text\n");
            s.push_str(&truncate_for_model(&printed, total, cap));
            s.push_str("\n```\n");
        }
        if let Some(err) = &out.error {
            s.push_str("Error:\n```text\n");
            s.push_str(&truncate_for_model(err, err.len(), cap / 2));
            s.push_str("\n```\n");
        }
        if out.over_wall_time {
            s.push_str(&format!(
                "The cell was killed after {} s, counting its llm_query calls. The REPL was restarted and your variables are lost; ask fewer, shorter sub-questions per cell.\n",
                self.engine.cfg.repl.cell_wall_timeout.as_secs()
            ));
        } else if out.timed_out {
            s.push_str(&format!(
                "The cell was killed after {} s. The REPL was restarted and your variables are lost; write faster code (search with `in` or `re` before splitting lines).\n",
                self.engine.cfg.repl.cell_timeout.as_secs()
            ));
        }
        if let Some(why) = &out.worker_died {
            s.push_str(&format!(
                "The REPL process died ({why}). It was restarted and your variables are lost.\n"
            ));
        }
        if !out.restored_helpers.is_empty() {
            s.push_str(&format!(
                "Note: your code replaced {}; the original helpers were restored. Use other names for your variables.\n",
                out.restored_helpers.join(", ")
            ));
        }
        s
    }
}
