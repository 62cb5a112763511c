//! Cells already run, for the repeated-code check: small models re-run the same cell instead of
//! reading its output, so a re-run is answered with the earlier output instead of running again.
//! A re-run counts as a repeat only while the REPL holds the same values for the variables the
//! cell read (`CellOutput::reads`); a worker restart forgets everything.

use crate::repl::CellOutput;
use std::collections::HashMap;

struct Seen {
    turn: u32,
    view: String,
    /// The variables the cell read and their fingerprints when it ran.
    reads: Vec<(String, u64)>,
}

#[derive(Default)]
pub(super) struct SeenCells {
    /// By whitespace-normalized code.
    cells: HashMap<String, Seen>,
    /// The REPL's variables and their fingerprints after the last cell.
    namespace: HashMap<String, u64>,
}

impl SeenCells {
    /// The turn and output of an earlier run of `code` that would give the same output now.
    pub(super) fn earlier(&self, code: &str) -> Option<(u32, &str)> {
        let seen = self.cells.get(&normalize(code))?;
        let same_inputs = seen
            .reads
            .iter()
            .all(|(name, fp)| self.namespace.get(name) == Some(fp));
        same_inputs.then_some((seen.turn, seen.view.as_str()))
    }

    /// Records a cell that ran in `turn`, with the model's view of its output.
    pub(super) fn record(&mut self, code: &str, turn: u32, view: String, out: &CellOutput) {
        if out.timed_out || out.worker_died.is_some() {
            // A fresh worker: no variable survived, nothing earlier holds.
            self.cells.clear();
            self.namespace.clear();
            return;
        }
        self.namespace = out.namespace.iter().cloned().collect();
        self.cells.insert(
            normalize(code),
            Seen {
                turn,
                view,
                reads: out.reads.clone(),
            },
        );
    }
}

/// Code with trailing spaces and blank lines gone: the same cell however it was spaced.
fn normalize(code: &str) -> String {
    code.lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(reads: &[(&str, u64)], namespace: &[(&str, u64)]) -> CellOutput {
        let pairs = |v: &[(&str, u64)]| v.iter().map(|(n, f)| (n.to_string(), *f)).collect();
        CellOutput {
            reads: pairs(reads),
            namespace: pairs(namespace),
            ..CellOutput::default()
        }
    }

    #[test]
    fn a_repeat_needs_the_same_inputs_and_the_same_worker() {
        let mut seen = SeenCells::default();
        // `hits = grep(...)` reads nothing; it is a repeat whatever `hits` holds.
        seen.record(
            "hits = grep('x')\n",
            1,
            "v1".into(),
            &out(&[], &[("hits", 1)]),
        );
        assert_eq!(seen.earlier("hits = grep('x')  \n\n"), Some((1, "v1")));
        // `print(hits)` read hits=1; after hits changed, it is new again.
        seen.record(
            "print(hits)",
            2,
            "v2".into(),
            &out(&[("hits", 1)], &[("hits", 1)]),
        );
        assert_eq!(seen.earlier("print(hits)"), Some((2, "v2")));
        seen.record(
            "hits = grep('y')",
            3,
            "v3".into(),
            &out(&[], &[("hits", 2)]),
        );
        assert_eq!(seen.earlier("print(hits)"), None);
        // A restart (timeout, crash) forgets every cell.
        let restarted = CellOutput {
            timed_out: true,
            ..CellOutput::default()
        };
        seen.record("while True: pass", 4, String::new(), &restarted);
        assert_eq!(seen.earlier("hits = grep('x')"), None);
    }
}
