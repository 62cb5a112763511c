//! Answers are checked before they are given: a FINAL that cites the made-up names of the
//! examples, paths the workspace does not have, or a name in a file that does not hold it
//! ("`gcd` in src/lib.rs:210"), is sent back once with what was wrong; the
//! caller's [`FinalCheck`](super::FinalCheck) (a refactor plan's edits and build) may send it
//! back a few more times.

use super::{Event, Run, citations, prompt, recipes};
use crate::repl::{CellOutput, EditOp};
use crate::workspace::Snapshot;

impl Run<'_> {
    /// What is wrong with a final answer, if it goes back to the model: its citations first,
    /// then the caller's check (top-level runs only).
    pub(super) async fn check_final(&mut self, answer: &str, iteration: u32) -> Option<String> {
        if let Some(complaint) = self.check_citations(answer) {
            return Some(complaint);
        }
        if let Some(complaint) = self.ranking.take().and_then(|r| r.complaint(answer)) {
            return Some(complaint);
        }
        let check = self
            .engine
            .final_check
            .clone()
            .filter(|_| self.depth == 0)?;
        self.adopt_provisional(answer);
        let message = check.check(answer, &self.edits).await;
        self.rec.record(Event::Check {
            iteration,
            passed: message.is_none(),
            message: message.clone(),
        });
        if message.is_some() && self.repairs < check.max_repairs() {
            self.repairs += 1;
            return message;
        }
        None
    }

    /// Runs the caller's check on an answer that stands whatever it says (no turn is left).
    pub(super) async fn final_verdict(&mut self, answer: &str, iteration: u32) {
        let Some(check) = self.engine.final_check.clone().filter(|_| self.depth == 0) else {
            return;
        };
        self.adopt_provisional(answer);
        let message = check.check(answer, &self.edits).await;
        self.rec.record(Event::Check {
            iteration,
            passed: message.is_none(),
            message,
        });
    }

    /// Whether the run plans edits (a refactor, or edits proposed) rather than answers.
    pub(super) fn is_plan(&self) -> bool {
        self.engine.final_check.is_some() || !self.edits.is_empty() || !self.provisional.is_empty()
    }

    /// An answer as it is given: a path it nearly names (`regex_syntax-0.8.12/...` for
    /// `regex-syntax-0.8.12/...`), still there after the model was told once, is mended.
    pub(super) fn mended(&self, answer: String) -> String {
        if self.is_plan() {
            answer
        } else {
            citations::mend_paths(&answer, self.snapshot)
        }
    }

    /// What a FINAL holds, as the chosen recipe says it.
    pub(super) fn answer_holds(&self) -> &'static str {
        self.recipes.first().map_or(recipes::ANSWER, |r| r.answer)
    }

    /// The question as repeated to the model each turn: its first paragraph (what follows is
    /// format, such as a refactor's edit rules, shown once).
    pub(super) fn asked(&self) -> &str {
        self.question.split("\n\n").next().unwrap_or(&self.question)
    }

    /// Adds the edits a cell proposed to the run's (`Clear` starts again, and drops the
    /// engine's provisional edits too).
    pub(super) fn take_edits(&mut self, out: &CellOutput) {
        for op in &out.edits {
            match op {
                EditOp::Clear => {
                    self.edits.clear();
                    self.provisional.clear();
                }
                op => self.edits.push(op.clone()),
            }
        }
    }

    /// The engine's first search proposed edits (a rename's): they become the plan when the
    /// model proposed none, in code or as edit blocks in its answer (which would overlap them).
    pub(super) fn adopt_provisional(&mut self, answer: &str) {
        if self.edits.is_empty() && !answer.contains("```edit") {
            self.edits = std::mem::take(&mut self.provisional);
        }
    }

    /// What is wrong with the citations of `answer`, the first time something is; `None` when
    /// they are fine or the model was already told once (the answer is then given as it is,
    /// and its unverified citations are marked where it is shown).
    pub(super) fn check_citations(&mut self, answer: &str) -> Option<String> {
        if self.citations_checked {
            return None;
        }
        let snap = self.snapshot;
        let examples = recipes::cites_example(answer, |name| mentioned(snap, name));
        let unknown: Vec<String> = citations::unknown_paths(answer, snap)
            .into_iter()
            .filter(|p| !examples.contains(p))
            .collect();
        // A plan names what its edits create: the files do not hold the new names yet.
        let misplaced = if self.is_plan() {
            Vec::new()
        } else {
            citations::misplaced_names(answer, snap)
        };
        if examples.is_empty() && unknown.is_empty() && misplaced.is_empty() {
            return None;
        }
        self.citations_checked = true;
        let unknown: Vec<(String, Option<String>)> = unknown
            .into_iter()
            .map(|p| {
                let near = citations::nearest_path(&p, snap);
                (p, near)
            })
            .collect();
        // What the cited line really is in, from the index: the name the answer meant.
        let places: Vec<(String, u32)> = misplaced
            .iter()
            .filter_map(|m| Some((m.path.clone(), m.line?)))
            .collect();
        let mut found = match (&self.index, places.is_empty()) {
            (Some(index), false) => index.enclosing(&places).into_iter(),
            _ => Vec::new().into_iter(),
        };
        let misplaced: Vec<_> = misplaced
            .into_iter()
            .map(|m| {
                let there = m.line.and_then(|_| found.next().flatten()).map(|d| d.name);
                (m, there)
            })
            .collect();
        Some(prompt::bad_citations(&examples, &unknown, &misplaced))
    }
}

/// Whether `name` occurs in the workspace: as a path, or in a file's text.
fn mentioned(snap: &Snapshot, name: &str) -> bool {
    if snap.get(name).is_some() || snap.files.iter().any(|f| f.path.ends_with(name)) {
        return true;
    }
    let finder = memchr::memmem::Finder::new(name.as_bytes());
    snap.files
        .iter()
        .any(|f| finder.find(f.text.as_bytes()).is_some())
}
