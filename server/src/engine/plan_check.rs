//! The check of a refactor run's final answer ([`FinalCheck`]): the plan (its edit blocks and
//! the edits the model's code recorded) must have edits that apply, and, when the user set a
//! check command, the project must pass it with the plan applied to a scratch copy. Otherwise
//! the model gets what failed and a few turns to repair the plan.

use super::FinalCheck;
use super::check_command::{self, CheckCommand, CheckOutcome};
use super::refactor::check_plan;
use crate::repl::EditOp;
use crate::workspace::Snapshot;
use futures::future::BoxFuture;
use std::sync::{Arc, Mutex};

/// Characters of the check's first errors shown to the model.
const ERROR_CHARS: usize = 2500;

pub struct PlanCheck {
    snapshot: Arc<Snapshot>,
    command: Option<CheckCommand>,
    repairs: u32,
    /// The check command's outcome on the last answer it saw.
    last: Mutex<Option<CheckOutcome>>,
}

impl PlanCheck {
    pub fn new(snapshot: Arc<Snapshot>, command: Option<CheckCommand>, repairs: u32) -> Self {
        PlanCheck {
            snapshot,
            command,
            repairs,
            last: Mutex::new(None),
        }
    }

    /// What the check command said about the last plan it checked, if it ran.
    pub fn last_outcome(&self) -> Option<CheckOutcome> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Told when a plan has nothing that applies.
const NO_EDITS: &str = "Your plan has no edit that applies to this workspace. Record the edits \
with code in a ```repl block, e.g. rename_symbol(\"old_name\", \"new_name\") or \
edit_replace(path, \"exact old text\", \"new text\"), check them with print(proposed_edits()), \
then reply with FINAL( then a one-line summary of the change then ).";

impl FinalCheck for PlanCheck {
    fn check<'a>(&'a self, answer: &'a str, edits: &'a [EditOp]) -> BoxFuture<'a, Option<String>> {
        Box::pin(async move {
            let plan = check_plan(answer, edits, &self.snapshot);
            if plan.edits.is_empty() && plan.files.is_empty() {
                let mut msg = NO_EDITS.to_string();
                for d in plan.dropped.iter().take(8) {
                    msg.push_str(&format!(
                        "\n- an edit of `{}` was dropped: {}",
                        d.path, d.reason
                    ));
                }
                return Some(msg);
            }
            let command = self.command.as_ref()?;
            let outcome = match check_command::run(command, &plan, &self.snapshot).await {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!("the check could not run: {e}");
                    return None;
                }
            };
            let failed = (!outcome.passed).then(|| {
                format!(
                    "The project's check `{}` fails with your edits applied{}:\n```text\n{}```\n\
                     Fix the edits (more edit_replace/edit_regex calls, or discard_edits() and \
                     start again), then reply with FINAL(...) again.",
                    outcome.command,
                    if outcome.timed_out {
                        " (it ran out of time)"
                    } else {
                        ""
                    },
                    check_command::first_errors(&outcome.output_tail, ERROR_CHARS),
                )
            });
            *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
            failed
        })
    }

    fn max_repairs(&self) -> u32 {
        self.repairs
    }
}
