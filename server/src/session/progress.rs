//! A run's events as progress reports, for every front end that shows them.

use crate::engine::Event;

/// A one-line description of a run event for progress reports ("turn 2 of 20: ran code, 312
/// bytes of output"); `None` for events that say nothing new. Stateless: see [`RunProgress`]
/// for what the run has spent so far.
pub fn progress_message(e: &Event, max_iterations: u32) -> Option<String> {
    let (what, iteration) = match e {
        Event::RunStart { files, bytes, .. } => {
            return Some(format!("reading {files} files ({bytes} bytes)"));
        }
        Event::RunEnd { stop_reason, .. } => return Some(format!("done ({stop_reason})")),
        e => step(e)?,
    };
    Some(format!("turn {iteration} of {max_iterations}: {what}"))
}

/// What a step of a run did, and its turn.
fn step(e: &Event) -> Option<(String, u32)> {
    Some(match e {
        Event::RootMessage {
            iteration,
            role: crate::llm::Role::Assistant,
            ..
        } => ("the root model replied".to_string(), *iteration),
        Event::CodeCell {
            iteration,
            output_bytes,
            error,
            ..
        } => (
            format!(
                "ran code, {output_bytes} bytes of output{}",
                if error.is_some() { " (it raised)" } else { "" }
            ),
            *iteration,
        ),
        Event::SubCall { iteration, .. } => ("a sub-call returned".to_string(), *iteration),
        Event::ChildRun { iteration, .. } => ("a child run finished".to_string(), *iteration),
        _ => return None,
    })
}

/// A run's progress as its events arrive: its turn, and what the run tree has spent (from the
/// engine's `Spent` events: the engine prices calls once, reports read that).
#[derive(Debug, Clone)]
pub struct RunProgress {
    max_turns: u32,
    spent: crate::engine::Spent,
}

/// One progress report: a line for people, and the figures for clients that show them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressUpdate {
    /// "turn 2 of 20: a sub-call returned, 3 sub-calls, 4210 tokens, $0.0012".
    pub message: String,
    pub turn: u32,
    pub max_turns: u32,
    /// Of the turns, 0 to 99.
    pub percentage: u32,
    pub sub_calls: u32,
    pub child_runs: u32,
    pub tokens: u64,
    /// `None` once a model the price table does not know was used.
    pub cost_usd: Option<f64>,
}

impl RunProgress {
    pub fn new(max_turns: u32) -> Self {
        RunProgress {
            max_turns: max_turns.max(1),
            spent: crate::engine::Spent {
                cost_usd: Some(0.0),
                ..Default::default()
            },
        }
    }

    /// The report an event makes, if it says anything new.
    pub fn update(&mut self, e: &Event) -> Option<ProgressUpdate> {
        if let Event::Spent { spent, .. } = e {
            self.spent = *spent;
            return None;
        }
        let (what, turn) = step(e)?;
        let s = &self.spent;
        let mut suffix = String::new();
        if s.sub_calls > 0 {
            suffix.push_str(&format!(", {} sub-calls", s.sub_calls));
        }
        suffix.push_str(&format!(", {} tokens", s.tokens));
        match s.cost_usd {
            Some(c) if c > 0.0 => suffix.push_str(&format!(", ${c:.4}")),
            Some(_) => {}
            None => suffix.push_str(", cost unknown"),
        }
        Some(ProgressUpdate {
            message: format!("turn {turn} of {}: {what}{suffix}", self.max_turns),
            turn,
            max_turns: self.max_turns,
            percentage: (turn.saturating_sub(1) * 100 / self.max_turns).min(99),
            sub_calls: s.sub_calls,
            child_runs: s.child_runs,
            tokens: s.tokens,
            cost_usd: s.cost_usd,
        })
    }
}
