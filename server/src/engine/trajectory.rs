//! The record of a run: every root message, code cell with its full output, and sub-call, as
//! events. The CLI writes them as JSONL; the language server turns them into progress.

use crate::llm::Usage;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    RunStart {
        question: String,
        workspace: String,
        files: usize,
        bytes: u64,
        root_model: String,
        sub_model: String,
        max_iterations: u32,
    },
    /// A message sent to, or received from, the root model.
    RootMessage {
        iteration: u32,
        role: crate::llm::Role,
        content: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        usage: Option<Usage>,
        #[serde(skip_serializing_if = "Option::is_none")]
        latency_ms: Option<u64>,
    },
    CodeCell {
        iteration: u32,
        index: usize,
        code: String,
        stdout: String,
        stderr: String,
        /// Bytes the cell printed in all (stdout and stderr may hold only head and tail).
        output_bytes: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        final_answer: Option<String>,
        timed_out: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        worker_died: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        restored_helpers: Vec<String>,
        duration_ms: u64,
    },
    SubCall {
        iteration: u32,
        model: String,
        prompt: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        response: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        usage: Usage,
        latency_ms: u64,
        /// Answered from the response cache, without a model call.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        cached: bool,
    },
    /// A child RLM run started by `rlm_query` (its own events are not in this trajectory).
    ChildRun {
        iteration: u32,
        depth: u32,
        prompt: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        answer: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        iterations: u32,
        stop_reason: String,
        wall_ms: u64,
        /// Tokens of the child's whole subtree (its root model, sub-calls and children).
        tokens: u64,
        /// Their cost; `None` when a model the price table does not know was used.
        #[serde(skip_serializing_if = "Option::is_none")]
        cost_usd: Option<f64>,
    },
    /// What the run tree has spent so far, after a model call (the root's, a sub-call, a child
    /// run): progress reports read it instead of pricing events themselves.
    Spent {
        iteration: u32,
        #[serde(flatten)]
        spent: super::budget::Spent,
    },
    /// A final answer checked by the caller's check (a refactor plan: its edits and the user's
    /// build); a failed check sends the model back to work with `message`.
    Check {
        iteration: u32,
        passed: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    RunEnd {
        answer: String,
        best_effort: bool,
        stop_reason: String,
        iterations: u32,
        sub_calls: u32,
        wall_ms: u64,
    },
}

/// What a run's events spent: tokens and cost of its root model and sub-calls, plus what its
/// child runs report for their subtrees. `None` cost once an unpriced model was used.
pub fn spend(events: &[Event], prices: &crate::llm::pricing::PriceTable) -> (u64, Option<f64>) {
    let (mut tokens, mut cost) = (0u64, Some(0.0));
    let mut root_model = "";
    let mut add = |tokens_now: u64, c: Option<f64>| {
        tokens += tokens_now;
        cost = cost.zip(c).map(|(a, b)| a + b);
    };
    for e in events {
        match e {
            Event::RunStart { root_model: m, .. } => root_model = m,
            Event::RootMessage { usage: Some(u), .. } => add(
                u.prompt_tokens + u.completion_tokens,
                prices.cost(root_model, u),
            ),
            Event::SubCall { model, usage, .. } => add(
                usage.prompt_tokens + usage.completion_tokens,
                prices.cost(model, usage),
            ),
            Event::ChildRun {
                tokens: t,
                cost_usd,
                ..
            } => add(*t, *cost_usd),
            _ => {}
        }
    }
    (tokens, cost)
}
